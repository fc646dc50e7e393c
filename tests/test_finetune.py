"""tools/finetune.py and what it trains with: a folder listed and streamed with a fixed split, the batch plan
(``planned_steps``, ``Layout.shards``), the test accuracy of an all-bad split; both frameworks train the same way
from the same checkpoint, and what they save loads back (jittor_support/optim.py itself is tested against
torch.optim in test_training.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import models_jittor
import models_pytorch
from conftest import random_state
from helpers import save_torch
from mlp_zoo.image_data.datasets import digits
from mlp_zoo.tools import finetune
from mlp_zoo.training.data import StreamedData, read_source
from mlp_zoo.training.loop import accuracy_line, evaluate, planned_steps
from mlp_zoo.training.plan import Layout, epoch_order, steps_per_epoch

LOSS_TOL = 1e-4  # per-step training losses of the two frameworks over a few steps


def tiny_folder(root: Path, per_class: int, bad: bool = False) -> Path:
    """Two class folders (cat, dog) of ``per_class`` 20x10 images, grey or RGB; ``bad``: text named .png."""
    for label, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            if bad:
                (root / name / f"{i}.png").write_text("not an image")
                continue
            grey = Image.new("L", (20 + i, 10), color=80 * label)
            (grey.convert("RGB") if i % 2 else grey).save(root / name / f"{i}.png")
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_a_folder_is_listed_then_streamed_with_a_fixed_split(tmp_path: Path):
    root = tiny_folder(tmp_path, 5)
    source, labels, classes, override = read_source(str(root), 8, tmp_path / "paths.bin")
    assert classes == ["cat", "dog"] and list(labels) == [0] * 5 + [1] * 5 and override == {}
    assert [Path(p).relative_to(root).as_posix() for p in (source.paths[0], source.paths[1])] == ["cat/0.png", "cat/1.png"]
    cfg = {"input_size": (3, 8, 8), "crop_pct": 1.0, "crop_mode": "center", "interpolation": "bilinear",
           "mean": (0.0,) * 3, "std": (1.0,) * 3}
    data = StreamedData(source, labels, classes, cfg, seed=0, augment=False, workers=0)
    again = StreamedData(source, labels, classes, cfg, seed=5, augment=True, workers=0)
    assert len(data.test) == 2 and np.array_equal(data.test, again.test)  # the split ignores the seed
    assert sorted(np.concatenate([data.train, data.test])) == list(range(10))
    (x, y, n), = data.test_batches(4)  # one batch, padded by repetition to one shape
    assert x.shape == (4, 3, 8, 8) and x.dtype == np.float32 and n == 2
    expected = np.where(y[:n, None, None, None] == 1, 80 / 255, 0.0) * np.ones((n, 3, 8, 8))  # grey 0 or 80
    np.testing.assert_allclose(x[:n], expected, atol=1e-6)


def test_digits_are_the_split_the_docs_write_out():
    source, labels, classes, override = read_source("digits", 16, Path("digits_are_not_listed.bin"))
    data = digits((16, 16))
    assert source.images.shape == (1797, 16, 16, 3) and classes == [str(i) for i in range(10)]
    streamed = StreamedData(source, labels, classes, {}, seed=0, augment=False, workers=0)
    assert np.array_equal(streamed.test, data.test) and len(data.test) == 359
    assert override == {"crop_pct": 1.0, "crop_mode": "center", "interpolation": "bilinear"}


def test_layout_shards_each_micro_batch_contiguously_per_rank():
    layout = Layout(batch_size=4, accum_steps=2, world_size=2)
    step = np.arange(10, 18)
    assert [s.tolist() for s in layout.shards(step, 0)] == [[10, 11], [14, 15]]
    assert [s.tolist() for s in layout.shards(step, 1)] == [[12, 13], [16, 17]]
    assert layout.samples_per_step == 8
    with pytest.raises(ValueError, match="--batch-size 3 must be a multiple of the 2 processes"):
        Layout(3, 1, 2)


def test_planned_steps_cover_each_epoch_once_and_resume_where_they_stopped():
    train = np.arange(100, 111)  # 11 samples: 2 steps of 4 per epoch, 3 left over
    layout = Layout(batch_size=2, accum_steps=2, world_size=1)
    per_epoch = steps_per_epoch(len(train), layout)
    plan = list(planned_steps(0, 5, per_epoch, train, seed=3, layout=layout, rank=0))
    assert per_epoch == 2 and [(s, e) for s, e, _ in plan] == [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2)]
    for epoch in range(2):
        seen = np.concatenate([np.concatenate(shards) for _, e, shards in plan if e == epoch])
        assert len(set(seen)) == 8 and set(seen) <= set(train)  # no sample twice within an epoch
        order = epoch_order(len(train), 3, epoch)
        assert seen.tolist() == train[order[:8]].tolist()
    assert not np.array_equal(plan[0][2][0], plan[2][2][0])  # each epoch its own order
    resumed = list(planned_steps(3, 5, per_epoch, train, seed=3, layout=layout, rank=0))
    assert [(s, e, [x.tolist() for x in sh]) for s, e, sh in resumed] == \
        [(s, e, [x.tolist() for x in sh]) for s, e, sh in plan[3:]]
    two = Layout(batch_size=2, accum_steps=2, world_size=2)
    ranks = [list(planned_steps(0, 1, per_epoch, train, seed=3, layout=two, rank=r))[0][2] for r in (0, 1)]
    assert [np.concatenate([ranks[0][m], ranks[1][m]]).tolist() for m in range(2)] == \
        [x.tolist() for x in plan[0][2]]  # the ranks' shards are the one-process micro-batches, split


def test_an_all_bad_test_split_has_no_accuracy(tmp_path: Path, capsys):
    source, labels, classes, _ = read_source(str(tiny_folder(tmp_path, 5, bad=True)), 8, tmp_path / "paths.bin")
    data = StreamedData(source, labels, classes, {"input_size": (3, 8, 8), "crop_pct": 1.0, "crop_mode": "center",
                                                  "interpolation": "bilinear", "mean": (0.5,) * 3,
                                                  "std": (0.5,) * 3}, 0, False, workers=0)
    accuracy, predictions = evaluate(None, data, 4, ema=False)  # the trainer is never asked: nothing to predict
    assert accuracy is None and predictions == [] and len(data.bad) == 2
    assert accuracy_line("torch", 1, accuracy, None, 0, len(data.test)) == \
        "torch epoch 1: no test accuracy (none of the 2 test images could be read)"
    assert accuracy_line("torch", 1, None, None, 0, 0) == "torch epoch 1: no test accuracy (the test split is empty)"
    assert accuracy_line("jittor", 2, 50.0, 75.0, 8, 10) == \
        "jittor epoch 2: test accuracy 50.00%, EMA 75.00% (8 images, 2 bad left out)"


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
