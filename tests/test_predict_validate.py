"""tools/predict.py and tools/validate.py end to end: a digits fine-tune measured again image for image in both
frameworks, every variant's top-5 on real photos the same in both, bad images named, counted and skipped with
bounded memory, and memory that does not grow with the folder."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlp_zoo import image_data
from mlp_zoo.image_data.datasets import digits
from mlp_zoo.model_specs import VARIANTS, variant
from helpers import noise_folder
from test_image_data import PHOTOS, SKIMAGE_DATA, make_bad_images
from mlp_zoo.tools import finetune, predict, validate

PEAK_RUN = Path(__file__).resolve().parent / "peak_run.py"
MEMORY_SLACK_MB = 200  # bad images may cost at most this much over a clean run (issue 16)
GROWTH_MB = 60  # 4x the images may cost at most this much more peak memory


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """mixer_s32 fine-tuned briefly on the digits at 32 px (PyTorch), and its test split written out as an
    ImageFolder."""
    root = tmp_path_factory.mktemp("digits")
    result = finetune.main(["--model", "mixer_s32", "--img-size", "32", "--framework", "torch", "--steps", "12",
                            "--batch-size", "16", "--lr", "3e-3", "--out", str(root / "out")])
    data = digits((32, 32))
    folder = root / "test"
    for position, i in enumerate(data.test):
        target = folder / data.classes[data.labels[i]] / f"{position:04d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.images[i]).save(target)
    return result["runs"]["torch"], folder


def test_validate_reproduces_the_fine_tune_image_for_image(finetuned, tmp_path):
    run, folder = finetuned
    # learnt something, so that agreement below is not agreement on a constant
    assert run["accuracies"][-1] > 20 and len(set(run["test_predictions"])) >= 4
    code = validate.main([str(folder), "--checkpoint", run["checkpoint"], "--framework", "both", "--workers", "2",
                          "--batch-size", "64", "--results-file", str(tmp_path / "r.csv"),
                          "--predictions-file", str(tmp_path / "p.json")])
    assert code == 0
    import csv

    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [r["framework"] for r in rows] == ["torch", "jittor"]
    for r in rows:
        assert float(r["top1"]) == round(run["accuracies"][-1], 3) and r["skipped"] == "0"
        assert r["img_size"] == "32" and float(r["crop_pct"]) == 1.0 and r["interpolation"] == "bilinear"
        assert int(r["images"]) == len(run["test_predictions"]) and float(r["images_per_s"]) > 0
    predictions = json.loads((tmp_path / "p.json").read_text())
    assert len(predictions) == len(run["test_predictions"])
    for p in predictions:
        expected = run["test_predictions"][int(Path(p["path"]).stem)]
        assert p["top5_torch"][0] == p["top5_jittor"][0] == expected, p


def test_predict_names_the_fine_tune_classes(finetuned, tmp_path):
    run, folder = finetuned
    files = sorted(folder.rglob("*.png"))[:3]
    assert predict.main([*map(str, files), "--checkpoint", run["checkpoint"], "--topk", "3", "--json",
                         str(tmp_path / "out.json"), "--workers", "0"]) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    for entry in result["predictions"]:
        top = entry["torch"]
        assert len(top) == 3 and top[0]["name"] == str(top[0]["class"])  # the digits' class names
        assert top[0]["class"] == run["test_predictions"][int(Path(entry["path"]).stem)]
        assert top[0]["prob"] >= top[1]["prob"] >= top[2]["prob"]


def _param(name: str):
    return pytest.param(name, marks=[pytest.mark.slow] if variant(name).params > 20e6 else [])


@pytest.mark.parametrize("name", [_param(n) for n in VARIANTS])
def test_both_frameworks_agree_on_every_photo(name, tmp_path):
    photos = [str(SKIMAGE_DATA / p) for p in PHOTOS]
    assert predict.main([*photos, "--model", name, "--framework", "both", "--json",
                         str(tmp_path / "out.json"), "--batch-size", str(len(photos)), "--workers", "0"]) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert len(result["predictions"]) == len(photos) and result["skipped"] == 0
    for entry in result["predictions"]:
        assert [p["class"] for p in entry["torch"]] == [p["class"] for p in entry["jittor"]], entry["path"]
        assert entry["agree"] and entry["max_abs_prob_diff"] < 1e-4
        assert len(entry["torch"]) == 5 and entry["torch"][0]["name"]  # ImageNet names
    assert result["cfg"]["architecture"] == name


def add_odd_images(folder: Path) -> dict[str, str]:
    """Every kind of bad image, and valid odd ones (animated GIF, multi-page TIFF, 16-bit, palette), in ``folder``."""
    bad = make_bad_images(folder)
    del bad["folder.jpg"]  # inside a listed folder, a folder named like an image is a folder (entered, empty here)
    frames = [Image.new("P", (30, 30), i) for i in range(3)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    pages = [Image.new("RGB", (30, 30), (9 * i, 0, 0)) for i in range(2)]
    pages[0].save(folder / "pages.tif", save_all=True, append_images=pages[1:])
    Image.fromarray(np.full((30, 30), 40000, np.uint16)).save(folder / "deep.png")
    Image.new("P", (30, 30), 1).save(folder / "palette.png", transparency=0)
    return bad


@pytest.fixture
def hostile(tmp_path):
    """A clean folder of 24 small photos in two classes, and a copy with every kind of bad and odd image added."""
    rng = np.random.RandomState(0)
    clean = tmp_path / "clean"
    for i in range(24):
        (clean / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.randint(0, 256, (48, 40, 3), dtype=np.uint8)).save(clean / f"c{i % 2}" / f"{i:02d}.png")
    folder = tmp_path / "hostile"
    shutil.copytree(clean, folder)
    bad = add_odd_images(folder / "c0")
    return clean, folder, bad, 24 + 4


RANDOM = ["--model", "mixer_s32", "--img-size", "32"]  # random weights: these tests are about the images


def _skipped_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("skipped: ")]


def test_bad_images_are_named_once_counted_and_skipped(hostile, tmp_path, capsys, monkeypatch):
    _, folder, bad, good = hostile
    real = image_data.list_folder
    deleted = []

    def list_then_delete(*args, **kwargs):  # a file deleted between listing and decoding
        listing = real(*args, **kwargs)
        deleted.append(listing.items[0][0])
        Path(deleted[0]).unlink()
        return listing

    monkeypatch.setattr(image_data, "list_folder", list_then_delete)
    code = validate.main([str(folder), *RANDOM, "--framework", "both", "--workers", "2", "--batch-size", "16",
                          "--results-file", str(tmp_path / "r.json")])
    captured = capsys.readouterr()
    assert code == 0 and deleted
    lines = _skipped_lines(captured.err)
    assert sum(deleted[0] in line and "no such file" in line for line in lines) == 1, lines
    assert len(lines) == len(bad) + 1 and len(set(lines)) == len(lines), lines
    for name in bad:
        shown = name.replace("\x1b", "\\x1b")
        assert sum(line.split(": ")[1].endswith("/" + shown) for line in lines) == 1, (name, lines)
    assert not any("\x1b" in line for line in lines)
    rows = json.loads((tmp_path / "r.json").read_text())
    assert [r["skipped"] for r in rows] == [len(bad) + 1] * 2 and rows[0]["images"] == good - 1
    assert "skipped: %d" % (len(bad) + 1) in captured.out

    code = predict.main([str(folder / "c0"), *RANDOM, "--workers", "1"])
    captured = capsys.readouterr()
    assert code == 0 and len(_skipped_lines(captured.err)) == len(bad)
    assert f"skipped: {len(bad)}" in captured.out and "anim.gif" in captured.out and "pages.tif" in captured.out


def test_strict_stops_at_the_first_bad_image(hostile, capsys):
    _, folder, _, _ = hostile
    assert validate.main([str(folder), *RANDOM, "--strict", "--workers", "0"]) == 2
    assert "bad image (--strict)" in capsys.readouterr().err
    assert predict.main([str(folder / "c0"), *RANDOM, "--strict", "--workers", "0"]) == 2


def peak(tmp_path: Path, tool: str, *args: str) -> dict:
    out = tmp_path / f"peak_{len(list(tmp_path.glob('peak_*')))}.json"
    done = subprocess.run([sys.executable, str(PEAK_RUN), str(out), tool, *args], capture_output=True, text=True,
                          timeout=600)
    assert out.exists(), done.stderr[-2000:]
    return json.loads(out.read_text())


def test_bad_images_cost_bounded_memory(hostile, tmp_path):
    clean, folder, _, _ = hostile
    common = [*RANDOM, "--workers", "0", "--batch-size", "16"]
    base = peak(tmp_path, "validate", str(clean), *common)
    hostile_run = peak(tmp_path, "validate", str(folder), *common)
    assert base["status"] == hostile_run["status"] == 0
    assert hostile_run["self_mb"] <= base["self_mb"] + MEMORY_SLACK_MB, (base, hostile_run)
    predicted = peak(tmp_path, "predict", str(folder / "c0"), *common)
    assert predicted["status"] == 0 and predicted["self_mb"] <= base["self_mb"] + MEMORY_SLACK_MB


def photo_folder(root: Path, count: int) -> Path:
    """``count`` real-photo-sized JPEGs (the scikit-image photos, cycled, slightly shifted), two classes."""
    photos = [Image.open(SKIMAGE_DATA / p).convert("RGB") for p in PHOTOS]
    for i in range(count):
        image = photos[i % len(photos)].rotate(i % 7, expand=False)
        target = root / f"class{i % 2}" / f"{i:05d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, quality=90)
    return root


def test_memory_does_not_grow_with_the_folder(tmp_path):
    big = photo_folder(tmp_path / "big", 400)
    small = tmp_path / "small"
    for i, f in enumerate(sorted(big.rglob("*.jpg"))[:100]):
        (small / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, small / f.parent.name / f.name)
    common = [*RANDOM, "--workers", "2", "--batch-size", "32"]
    a = peak(tmp_path, "validate", str(small), *common)
    b = peak(tmp_path, "validate", str(big), *common)
    assert a["status"] == b["status"] == 0
    assert b["self_mb"] <= a["self_mb"] + GROWTH_MB and b["workers_mb"] <= a["workers_mb"] + GROWTH_MB, (a, b)


def test_compare_adds_a_measured_top1_column(hostile, tmp_path, capsys):
    from mlp_zoo.tools import compare

    clean = str(hostile[0])
    expected = validate.validate(validate.parse_args([clean, "--model", "mixer_s32", "--framework", "both",
                                                      "--batch-size", "2"]))
    assert compare.main(["--models", "mixer_s32", "--batch", "2", "--runs", "1", "--warmup", "0",
                         "--data", clean, "--json", str(tmp_path / "c.json")]) == 0
    assert "| measured top-1 |" in capsys.readouterr().out
    records = json.loads((tmp_path / "c.json").read_text())
    assert [r["measured_top1"] for r in records] == [r["top1"] for r in expected["results"]]


@pytest.mark.parametrize("tool", ["predict", "validate"])
def test_fewer_images_than_a_batch_are_not_padded_to_it(tmp_path, monkeypatch, tool):
    """One photo costs one image of compute, not --batch-size (32) images' worth of padding; a folder of 4 runs
    one batch of 4 in each framework."""
    from mlp_zoo.tools import classify

    folder = noise_folder(tmp_path / "images", 2)
    seen = []
    logits = classify.Models.logits
    monkeypatch.setattr(classify.Models, "logits", lambda self, f, x: seen.append((f, len(x))) or logits(self, f, x))
    common = ["--model", "mixer_s32", "--img-size", "32", "--workers", "0", "--framework", "both"]
    if tool == "predict":
        predict.main([str(folder / "a" / "000.png"), *common])
        assert seen == [("torch", 1), ("jittor", 1)]
    else:
        validate.main([str(folder), *common])
        assert seen == [("torch", 4), ("jittor", 4)]
