"""Streamed training data: timm's RandomResizedCrop + flip drawn per (seed, epoch, image), identical batches in
both frameworks, bad images named, counted and skipped, and memory that does not grow with the folder."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlp_zoo.image_data.train_transforms import crop_box, sample_rng, train_transform
from test_distributed import ROOT, _env

RSS_SLACK_MB = 50
CFG = {"input_size": (3, 16, 16), "interpolation": "bicubic", "mean": (0.5,) * 3, "std": (0.5,) * 3}


def _finetune(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "tools" / "finetune.py"), *args]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=1200)


def test_random_resized_crop_follows_torchvisions_rules():
    boxes = [crop_box(200, 100, sample_rng(0, epoch, index)) for epoch in range(3) for index in range(200)]
    assert boxes[:5] == [crop_box(200, 100, sample_rng(0, 0, i)) for i in range(5)]  # a function of the triple
    assert len(set(boxes)) > 150
    for top, left, h, w in boxes:
        assert 0 <= top <= 100 - h and 0 <= left <= 200 - w
        assert 0.08 * 20000 - 300 <= h * w <= 20000 and 3 / 4 - 0.1 <= w / h <= 4 / 3 + 0.1
    # no crop of the right area and shape fits a 1000 x 10 strip: torchvision's centre fallback, ratio clamped
    assert crop_box(1000, 10, sample_rng(0, 0, 0)) == (0, (1000 - 13) // 2, 10, 13)


def test_train_transform_is_reproducible_and_flips():
    image = Image.fromarray(np.random.RandomState(0).randint(0, 255, (40, 60, 3), dtype=np.uint8))
    transform = train_transform(CFG)
    a, b = transform(image, sample_rng(1, 2, 3)), transform(image, sample_rng(1, 2, 3))
    assert a.shape == (3, 16, 16) and a.dtype == np.float32 and np.array_equal(a, b)
    assert -1.0 <= a.min() and a.max() <= 1.0
    # the whole image, uncropped, unflipped and flipped: the mirror images of each other
    whole = train_transform(CFG, scale=(1.0, 1.0), ratio=(1.5, 1.5), hflip=0.0)(image, sample_rng(0, 0, 0))
    flipped = train_transform(CFG, scale=(1.0, 1.0), ratio=(1.5, 1.5), hflip=1.0)(image, sample_rng(0, 0, 0))
    np.testing.assert_array_equal(whole[:, :, ::-1], flipped)


def test_both_frameworks_see_the_same_augmented_batches(tmp_path: Path):
    done = _finetune("--model", "mixer_s32", "--img-size", "64", "--framework", "both", "--steps", "10",
                     "--batch-size", "8", "--optimizer", "sgd", "--lr", "0.05", "--workers", "2",
                     "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "finetune.json").read_text())
    assert result["args"]["aug"] == "rrc-flip"
    assert result["comparison"]["max_abs_diff_first"] <= 1e-4, result["comparison"]


def _folder(root: Path, count: int) -> Path:
    """``count`` tiny PNGs in two class folders."""
    rng = np.random.RandomState(count)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
    for i in range(count):
        pixels = rng.randint(0, 255, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / ("a", "b")[i % 2] / f"{i:05d}.png", compress_level=0)
    return root


def _peak_rss_mb(out: Path, data: Path) -> float:
    """Peak resident memory (MB) of a 3-step run that also evaluates the whole 20% test split."""
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); sys.exit(r.returncode)")
    cmd = [sys.executable, "-c", probe, sys.executable, str(ROOT / "tools" / "finetune.py"), "--model", "mixer_s32",
           "--img-size", "64", "--steps", "3", "--batch-size", "16", "--workers", "2", "--data", str(data),
           "--out", str(out)]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return float(done.stdout.strip().splitlines()[-1])


def test_memory_does_not_grow_with_the_folder(tmp_path: Path):
    small = _peak_rss_mb(tmp_path / "out1k", _folder(tmp_path / "1k", 1_000))
    large = _peak_rss_mb(tmp_path / "out10k", _folder(tmp_path / "10k", 10_000))
    assert large - small <= RSS_SLACK_MB, (small, large)


def test_bad_images_are_named_counted_and_skipped(tmp_path: Path):
    data = _folder(tmp_path / "data", 40)
    truncated = data / "a" / "00000.png"
    truncated.write_bytes(truncated.read_bytes()[:60])
    (data / "b" / "notes.jpg").write_text("not an image")
    done = _finetune("--model", "mixer_s32", "--img-size", "64", "--epochs", "1", "--batch-size", "8",
                     "--aug", "none", "--data", str(data), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-3000:]
    for bad in (truncated, data / "b" / "notes.jpg"):
        assert f"skipping {bad}: " in done.stderr
    run = json.loads((tmp_path / "out" / "finetune.json").read_text())["runs"]["torch"]
    assert run["skipped_images"] == sorted(str(p) for p in (truncated, data / "b" / "notes.jpg"))
    assert len(run["losses"]) == 4
