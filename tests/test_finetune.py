"""tools/finetune.py: both frameworks train the same way from the same checkpoint, and what they save loads back
(jittor_support/optim.py itself is tested against torch.optim in test_training.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import models_jittor
import models_pytorch
from conftest import random_state
from helpers import save_torch
from mlp_zoo.tools import finetune
from mlp_zoo.image_data.datasets import digits

LOSS_TOL = 1e-4  # per-step training losses of the two frameworks over a few steps


def test_digits_are_a_fixed_split():
    a, b = digits((16, 16)), digits((16, 16))
    assert a.images.shape == (1797, 16, 16, 3) and a.classes == [str(i) for i in range(10)]
    assert np.array_equal(a.train, b.train) and len(a.test) == 359 and not set(a.train) & set(a.test)
    x, y = a.batch(a.train[:4])
    assert x.shape == (4, 3, 16, 16) and x.dtype == np.float32 and y.dtype == np.int64


def test_image_folder_reads_one_folder_per_class(tmp_path: Path):
    from PIL import Image

    from mlp_zoo.image_data.datasets import image_folder

    for label, name in enumerate(("cat", "dog")):
        (tmp_path / name).mkdir()
        for i in range(5):
            grey = Image.new("L", (20 + i, 10), color=80 * label)
            (grey.convert("RGB") if i % 2 else grey).save(tmp_path / name / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    data = image_folder(tmp_path, (8, 8))
    assert data.classes == ["cat", "dog"] and data.images.shape == (10, 8, 8, 3)
    assert list(data.labels) == [0] * 5 + [1] * 5 and len(data.test) == 2
    assert (data.images[data.labels == 1] == 80).all()


def test_batch_plan_is_seeded_and_drops_the_last_partial_batch():
    plan = finetune.batch_plan(100, 32, epochs=2, steps=None, seed=3)
    assert [len(epoch) for epoch in plan] == [3, 3] and all(len(b) == 32 for epoch in plan for b in epoch)
    again = finetune.batch_plan(100, 32, epochs=2, steps=4, seed=3)
    assert [len(epoch) for epoch in again] == [3, 1] and np.array_equal(again[1][0], plan[1][0])


def test_side_by_side_fine_tune(tmp_path: Path):
    # a 1000-class checkpoint for the input size used here (the Mixer's token MLP is tied to it)
    path = save_torch(tmp_path / "in1k.pth", random_state("mixer_s32", img_size=64))
    with pytest.warns(UserWarning, match="dropped head.weight, head.bias"):
        result = finetune.main(["--model", "mixer_s32", "--img-size", "64", "--framework", "both", "--steps", "3",
                                "--batch-size", "8", "--optimizer", "sgd", "--lr", "0.05", "--pretrained", str(path),
                                "--out", str(tmp_path / "out"), "--plot"])
    runs, comparison = result["runs"], result["comparison"]
    assert len(runs["torch"]["losses"]) == len(runs["jittor"]["losses"]) == 3
    assert comparison["max_abs_diff_first"] <= LOSS_TOL, comparison
    assert (tmp_path / "out" / "loss_curves.png").stat().st_size > 0
    # each framework's native checkpoint loads in both, with the input size and class count it was trained for
    saved = torch.load(runs["torch"]["checkpoint"], weights_only=True)
    for checkpoint in (runs["torch"]["checkpoint"], runs["jittor"]["checkpoint"]):
        for zoo in (models_pytorch, models_jittor):
            model = zoo.create_model("mixer_s32", pretrained=checkpoint, num_classes=10)
            assert model.num_classes == 10 and model.img_size == (64, 64)
            got = model.state_dict()["head.weight"]
            got = got.detach().numpy() if isinstance(got, torch.Tensor) else got.numpy()
            np.testing.assert_allclose(got, saved["state_dict"]["head.weight"].numpy(), atol=1e-4)
