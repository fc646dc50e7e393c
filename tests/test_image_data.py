"""image_data: each release's eval transform against independent references (timm/torchvision's PIL rules, TF's
bilinear), safe decoding of every kind of bad image, folder listing, ordered bounded streaming, label lists."""
from __future__ import annotations

import math
import os
import struct
import time
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mlp_zoo.image_data import (BadImage, FolderError, class_names, eval_transform, image_folder, labelled_folder,
                        load_rgb, stream, synsets)
from mlp_zoo.image_data.labels import LABELS
from processes import stream_workers
from mlp_zoo.model_specs import VARIANTS, pretrained_cfg, releases

SKIMAGE_DATA = Path(pytest.importorskip("skimage").__file__).parent / "data"
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png"]
PIL_FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def release_cfgs() -> list[dict]:
    """Every distinct preprocessing among all variants' releases."""
    seen, out = set(), []
    for name in VARIANTS:
        for release in releases(name):
            cfg = pretrained_cfg(name, release)
            keys = ("input_size", "crop_pct", "crop_mode", "interpolation", "mean", "std")
            key = tuple((k, str(cfg[k])) for k in keys)
            if key not in seen:
                seen.add(key)
                out.append(cfg)
    return out


CENTER = [c for c in release_cfgs() if c["crop_mode"] == "center"]
SQUASH = [c for c in release_cfgs() if c["crop_mode"] == "squash"]


def photo(name: str) -> Image.Image:
    with Image.open(SKIMAGE_DATA / name) as im:
        return im.convert("RGB")


def odd_images(cfg: dict) -> list[Image.Image]:
    rng = np.random.RandomState(1)
    scale = math.floor(224 / cfg["crop_pct"])
    sizes = [(1, 1), (3, 5), (4000, 30), (300, 451), (224, 224), (scale, scale), (scale, 301)]
    return [Image.fromarray(rng.randint(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def reference_center(image: Image.Image, cfg: dict) -> np.ndarray:
    """timm's transforms_imagenet_eval as torchvision runs it on a PIL image, written independently: exact
    rational arithmetic for the sizes, PIL's crop, torch for ToTensor and Normalize."""
    size = cfg["input_size"][-1]
    scale = int(Fraction(size) / Fraction(str(cfg["crop_pct"])))  # floor of a positive rational
    w, h = image.size
    if w <= h:
        new = (scale, int(Fraction(scale * h, w)))
    else:
        new = (int(Fraction(scale * w, h)), scale)
    if new != (w, h):
        image = image.resize(new, PIL_FILTERS[cfg["interpolation"]])
    w, h = image.size
    left, top = round((w - size) / 2), round((h - size) / 2)
    image = image.crop((left, top, left + size, top + size))
    t = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).to(torch.float32).div(255)
    mean = torch.tensor(cfg["mean"], dtype=torch.float32)[:, None, None]
    std = torch.tensor(cfg["std"], dtype=torch.float32)[:, None, None]
    return t.sub(mean).div(std).numpy()


def reference_tf_bilinear(pixels: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """tf.image.resize(bilinear, antialias=False), one output pixel at a time in float32 scalars."""
    f32 = np.float32
    src = pixels.astype(np.float32)
    in_h, in_w = src.shape[:2]
    out = np.empty((out_h, out_w, src.shape[2]), np.float32)
    for y in range(out_h):
        fy = (f32(y) + f32(0.5)) * (f32(in_h) / f32(out_h)) - f32(0.5)
        y0, y1, dy = max(int(math.floor(fy)), 0), min(int(math.ceil(fy)), in_h - 1), f32(fy - f32(math.floor(fy)))
        for x in range(out_w):
            fx = (f32(x) + f32(0.5)) * (f32(in_w) / f32(out_w)) - f32(0.5)
            x0, x1 = max(int(math.floor(fx)), 0), min(int(math.ceil(fx)), in_w - 1)
            dx = f32(fx - f32(math.floor(fx)))
            top = src[y0, x0] + (src[y0, x1] - src[y0, x0]) * dx
            bottom = src[y1, x0] + (src[y1, x1] - src[y1, x0]) * dx
            out[y, x] = top + (bottom - top) * dy
    return out


@pytest.mark.parametrize("cfg", CENTER, ids=lambda c: f"{c['architecture']}-{c['tag']}")
def test_center_transform_equals_timm_reference_exactly(cfg):
    transform = eval_transform(cfg)
    images = [photo(p) for p in PHOTOS] + odd_images(cfg)
    for image in images:
        got, want = transform(image), reference_center(image, cfg)
        assert got.dtype == np.float32 and got.shape == (3, 224, 224)
        assert np.array_equal(got, want), (image.size, cfg["crop_pct"], np.abs(got - want).max())


@pytest.mark.parametrize("cfg", SQUASH, ids=lambda c: f"{c['architecture']}-{c['tag']}")
def test_squash_transform_equals_tf_bilinear(cfg):
    transform = eval_transform(cfg)
    for image in [photo("chelsea.png"), photo("rocket.jpg")] + odd_images(cfg)[:3]:
        want = (reference_tf_bilinear(np.asarray(image), 224, 224) - 127.5) / 127.5
        got = transform(image)
        assert got.shape == (3, 224, 224) and np.abs(got - want.transpose(2, 0, 1)).max() <= 1e-5


def test_hand_checked_crops():
    plain = dict(crop_mode="center", interpolation="bicubic", mean=(0, 0, 0), std=(1, 1, 1))
    a = np.arange(45, dtype=np.uint8).reshape(3, 5, 3)  # 3 high, 5 wide: no resize, left = round(1.0) = 1
    got = eval_transform(dict(plain, input_size=(3, 3, 3), crop_pct=1.0))(Image.fromarray(a))
    assert np.array_equal(got * 255, a[:, 1:4].transpose(2, 0, 1).astype(np.float32))
    b = np.arange(54, dtype=np.uint8).reshape(3, 6, 3)  # left = round(1.5) = 2 (half to even)
    got = eval_transform(dict(plain, input_size=(3, 3, 3), crop_pct=1.0))(Image.fromarray(b))
    assert np.array_equal(got * 255, b[:, 2:5].transpose(2, 0, 1).astype(np.float32))
    c = np.full((2, 2, 3), 255, np.uint8)  # crop_pct 2: resize to 2, then the crop pads 1 pixel of zeros around
    got = eval_transform(dict(plain, input_size=(3, 4, 4), crop_pct=2.0))(Image.fromarray(c))[0]
    assert got[1:3, 1:3].min() == 1 and got.sum() == 4
    # mean/std: (x / 255 - mean) / std in float32
    got = eval_transform(dict(plain, input_size=(3, 3, 3), crop_pct=1.0, mean=(0.5,) * 3, std=(0.25,) * 3))(
        Image.fromarray(a))
    want = (a[:, 1:4].transpose(2, 0, 1).astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.25)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_every_mode_gives_three_channels(mode):
    cfg = pretrained_cfg("smlpnet_s")
    image = Image.new(mode, (300, 200))
    if mode == "P":
        image.info["transparency"] = 0
    out = eval_transform(cfg)(image)
    assert out.shape == (3, 224, 224) and out.dtype == np.float32 and np.isfinite(out).all()


def test_bad_cfg_is_refused():
    cfg = pretrained_cfg("mixer_b16", "goog")
    with pytest.raises(ValueError, match="squash"):
        eval_transform(dict(cfg, interpolation="bicubic"))
    with pytest.raises(ValueError, match="crop_mode"):
        eval_transform(dict(cfg, crop_mode="border"))


# ---- decoding --------------------------------------------------------------------------------------------------

def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def bomb_png(width: int = 50000, height: int = 50000) -> bytes:
    """A valid-looking PNG of a few dozen bytes declaring ``width`` x ``height`` RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _png_chunk(b"IEND", b""))


def make_bad_images(folder: Path) -> dict[str, str]:
    """Every kind of bad image, in ``folder``: name -> a word its reason must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    good = Image.fromarray(rng.randint(0, 256, (120, 160, 3), dtype=np.uint8))
    good.save(folder / "whole.jpg")
    jpeg = (folder / "whole.jpg").read_bytes()
    (folder / "whole.jpg").unlink()
    good.save(folder / "whole.png")
    png = (folder / "whole.png").read_bytes()
    (folder / "whole.png").unlink()
    (folder / "truncated.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    (folder / "truncated.png").write_bytes(png[:len(png) // 2])
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image at all\n")
    (folder / "folder.jpg").mkdir()
    os.mkfifo(folder / "fifo.jpg")
    (folder / "bomb.png").write_bytes(bomb_png())
    (folder / "esc\x1b[31mape.jpg").write_bytes(jpeg[:100])
    return {"truncated.jpg": "truncated", "truncated.png": "truncated", "zero.jpg": "empty", "text.jpg": "not an image",
            "folder.jpg": "directory", "fifo.jpg": "FIFO", "bomb.png": "bomb", "esc\x1b[31mape.jpg": "truncated"}


def test_every_bad_image_is_named_with_its_reason(tmp_path):
    expected = make_bad_images(tmp_path)
    start = time.monotonic()
    for name, word in expected.items():
        bad = load_rgb(tmp_path / name)
        assert isinstance(bad, BadImage), name
        assert word in bad.reason and "\n" not in bad.line() and "\x1b" not in bad.line()
    assert time.monotonic() - start < 10  # the FIFO did not block, the bomb was not decoded
    assert load_rgb(tmp_path / "gone.jpg").reason.startswith("no such file")


def test_bomb_is_refused_from_the_header_with_bounded_memory(tmp_path):
    import tracemalloc

    (tmp_path / "bomb.png").write_bytes(bomb_png(10000, 10000))  # 100 Mpx: over our limit, under Pillow's own
    tracemalloc.start()
    bad = load_rgb(tmp_path / "bomb.png")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert isinstance(bad, BadImage) and "10000x10000" in bad.reason and peak < 5_000_000


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "secret.jpg"
    Image.new("RGB", (8, 8)).save(path)
    path.chmod(0)
    if os.geteuid() == 0:  # root reads any file: make the open fail as it would for a user
        real_open = os.open

        def denied(p, *a, **k):
            if os.fspath(p) == os.fspath(path):
                raise PermissionError(13, "Permission denied")
            return real_open(p, *a, **k)

        monkeypatch.setattr(os, "open", denied)
    bad = load_rgb(path)
    assert isinstance(bad, BadImage) and "permission denied" in bad.reason


def test_odd_but_valid_images_decode_to_rgb(tmp_path):
    frames = [Image.new("P", (20, 10), i) for i in range(3)]
    for i, f in enumerate(frames):
        f.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0] + [0] * 759)
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    assert np.asarray(load_rgb(tmp_path / "anim.gif"))[0, 0].tolist() == [0, 0, 0]  # the first frame
    pages = [Image.new("RGB", (20, 10), (60 * i + 10, 0, 0)) for i in range(3)]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    assert np.asarray(load_rgb(tmp_path / "pages.tif"))[0, 0].tolist() == [10, 0, 0]  # the first page
    deep = np.full((10, 20), 65535, np.uint16)
    deep[0, 0] = 257 * 100
    Image.fromarray(deep).save(tmp_path / "16bit.png")
    got = np.asarray(load_rgb(tmp_path / "16bit.png"))
    assert got[0, 0].tolist() == [100] * 3 and got[1, 1].tolist() == [255] * 3  # scaled, not clipped
    pal = Image.new("P", (20, 10), 1)
    pal.putpalette([9, 9, 9, 50, 60, 70] + [0] * 762)
    pal.save(tmp_path / "palette.png", transparency=1)
    assert np.asarray(load_rgb(tmp_path / "palette.png"))[0, 0].tolist() == [50, 60, 70]  # alpha dropped as timm
    Image.new("LA", (20, 10), (100, 0)).save(tmp_path / "la.png")
    Image.new("RGBA", (20, 10), (1, 2, 3, 0)).save(tmp_path / "rgba.png")
    Image.new("CMYK", (20, 10), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg")
    assert np.asarray(load_rgb(tmp_path / "la.png"))[0, 0].tolist() == [100] * 3
    assert np.asarray(load_rgb(tmp_path / "rgba.png"))[0, 0].tolist() == [1, 2, 3]
    assert np.asarray(load_rgb(tmp_path / "cmyk.jpg")).min() >= 250
    for name in ("anim.gif", "pages.tif", "16bit.png", "palette.png", "la.png", "rgba.png", "cmyk.jpg"):
        assert load_rgb(tmp_path / name).mode == "RGB"


def test_exif_orientation_is_applied_only_when_asked(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    Image.new("RGB", (40, 20)).save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert load_rgb(tmp_path / "rotated.jpg").size == (40, 20)  # as timm: no transpose
    assert load_rgb(tmp_path / "rotated.jpg", exif_transpose=True).size == (20, 40)


def test_truncated_images_stay_refused_when_pillow_is_told_otherwise(tmp_path, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        load_rgb(tmp_path / "a.png")


# ---- folders ---------------------------------------------------------------------------------------------------

def test_image_folder_order_and_odd_entries(tmp_path):
    for path in ("b/2.png", "b/10.png", "a/sub/z.jpg", "a/y.JPEG", "a/notes.txt", "c/x.webp"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"x")
    (tmp_path / "a" / "dir.jpg").mkdir()  # a folder, whatever its name: descended into, not an image
    (tmp_path / "a" / "dir.jpg" / "in.png").write_bytes(b"x")
    (tmp_path / "stray.jpg").write_bytes(b"x")  # a file at the top is no class
    listing = image_folder(tmp_path)
    assert listing.classes == ["a", "b", "c"]
    rel = [(os.path.relpath(p, tmp_path), y) for p, y in listing.items]
    assert rel == [("a/y.JPEG", 0), ("a/dir.jpg/in.png", 0), ("a/sub/z.jpg", 0), ("b/10.png", 1), ("b/2.png", 1),
                   ("c/x.webp", 2)]
    with pytest.raises(FolderError, match="no class folders"):
        image_folder(tmp_path / "c")


def test_walk_streams_in_torchvision_order_and_enters_each_folder_once(tmp_path, monkeypatch):
    from mlp_zoo.image_data import folder

    for path in ("b/1.png", "b-c/2.png", "b/c/3.png", "b/c.jpg/4.png", "a.png", "b/fifo.jpg", "z/5.png"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"x")
    (tmp_path / "b" / "fifo.jpg").unlink()
    os.mkfifo(tmp_path / "b" / "fifo.jpg")  # not a folder: listed, to be reported bad when decoded
    os.symlink(tmp_path / "b", tmp_path / "b" / "c" / "loop")  # a cycle: os.walk(followlinks=True) never ends
    # torchvision's ImageFolder order: sorted(os.walk(...)) compares whole paths, so b-c/ comes between b/ and b/c/
    expected = ["a.png", "b/1.png", "b/fifo.jpg", "b-c/2.png", "b/c/3.png", "b/c.jpg/4.png", "z/5.png"]
    listed: list[str] = []
    real_scandir = os.scandir
    monkeypatch.setattr(folder.os, "scandir", lambda p: listed.append(os.path.relpath(p, tmp_path)) or real_scandir(p))
    walk = folder.walk_images(str(tmp_path))
    assert os.path.relpath(next(walk), tmp_path) == "a.png" and listed == ["."]  # streamed: one folder read so far
    assert [os.path.relpath(p, tmp_path) for p in walk] == expected[1:]
    assert sorted(listed) == sorted([".", "b", "b-c", "b/c", "b/c.jpg", "z"])  # the loop's target read once


def test_labelled_flat_folder(tmp_path):
    (tmp_path / "labels.txt").write_text("# name label\nb.jpg n01440764\na.jpg, n15075141\n")
    listing = labelled_folder(tmp_path, tmp_path / "labels.txt", list(synsets("imagenet-1k")))
    assert [(Path(p).name, y) for p, y in listing.items] == [("a.jpg", 999), ("b.jpg", 0)]
    (tmp_path / "numbers.txt").write_text("a.jpg 3\nb.jpg 1\n")
    assert [y for _, y in labelled_folder(tmp_path, tmp_path / "numbers.txt").items] == [3, 1]
    (tmp_path / "wrong.txt").write_text("a.jpg n99999999\n")
    with pytest.raises(FolderError, match="not a known class"):
        labelled_folder(tmp_path, tmp_path / "wrong.txt", list(synsets("imagenet-1k")))
    (tmp_path / "bad.txt").write_text("a.jpg\n")
    with pytest.raises(FolderError, match="line 1"):
        labelled_folder(tmp_path, tmp_path / "bad.txt")


# ---- streaming -------------------------------------------------------------------------------------------------

def slow_square(x: int) -> int:
    time.sleep(0.002 * (x % 5))  # finishing out of order
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


def test_stream_is_ordered_bounded_and_stops_cleanly():
    pulled = []

    def items():
        for i in range(200):
            pulled.append(i)
            yield i

    seen = []
    for index, value in stream(items(), slow_square, workers=2, queue_size=6):
        assert value == index * index
        assert len(pulled) - len(seen) <= 7  # never more than queue_size (+ the one just handed out) ahead
        seen.append(index)
    assert seen == list(range(200))
    assert list(stream(range(5), slow_square, workers=0)) == [(i, i * i) for i in range(5)]
    with pytest.raises(ValueError, match="three"):
        list(stream(range(10), fail_on_three, workers=2))
    start = time.monotonic()
    for index, _ in stream(range(10 ** 6), slow_square, workers=2):
        if index == 3:
            break
    assert time.monotonic() - start < 30 and stream_workers(os.getpid()) == []


# ---- label lists -----------------------------------------------------------------------------------------------

def test_label_lists():
    ids = synsets("imagenet-1k")
    assert len(ids) == 1000 == len(set(ids)) and list(ids) == sorted(ids)
    names = class_names("imagenet-1k")
    assert names[0] == "tench" and names[1] == "goldfish" and names[999] == "toilet tissue"
    assert len(synsets("imagenet-21k")) == 21843 == len(class_names("imagenet-21k"))
    assert (LABELS / "README.md").exists()
