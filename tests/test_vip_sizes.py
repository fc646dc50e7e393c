"""The tools take ViP at the input sizes weights_convert/resample.py supports (square, each stage's grid dividing
the official one: 112 for ViP-S/14 is an 8x8 grid), and refuse the others at parse time."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlp_zoo.tools import compare, finetune, predict, validate


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "images"
    (root / "a").mkdir(parents=True)
    rng = np.random.RandomState(0)
    for i in range(3):
        Image.fromarray(rng.randint(0, 256, (120, 130, 3), dtype=np.uint8)).save(root / "a" / f"{i}.png")
    return root


def test_predict_runs_vip_at_112(folder, tmp_path):
    # a random init (validate, compare and macs build it so too: create_model(name, img_size=112))
    out = tmp_path / "p.json"
    assert predict.main([str(folder / "a"), "--model", "vip_s14", "--img-size", "112", "--workers", "0",
                         "--batch-size", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["predictions"]) == 3 and result["cfg"]["input_size"] == [3, 112, 112]


def test_finetune_builds_vip_at_112():
    # the build arguments create_model gets (it builds them as predict does above, or resamples a 224 file)
    args = finetune.parse_args(["--model", "vip_s14", "--img-size", "112"])
    assert finetune.model_kwargs(args.model, args.img_size, 2, 0.0) == {"num_classes": 2, "drop_path_rate": 0.0,
                                                                       "img_size": 112}


def test_the_sizes_are_checked_when_parsing():
    assert compare.parse_args(["--models", "vip_s14", "--img-size", "112"]).img_size == 112
    assert validate.parse_args(["x", "--model", "vip_s7", "--img-size", "56"]).img_size == 56
    for tool in (compare, validate):
        with pytest.raises(SystemExit):
            tool.parse_args((["--models"] if tool is compare else ["x", "--model"]) + ["vip_s7", "--img-size", "70"])
