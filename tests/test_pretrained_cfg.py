"""pretrained_cfg: each release's evaluation settings (the official values), set by create_model from the release
it detects, identically in both frameworks; fine-tune checkpoints carry their cfg through the safe reader."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import models_jittor
import models_pytorch
from conftest import random_state
from helpers import save_torch
from mlp_zoo.model_specs import VARIANTS, checkpoint_cfg, pretrained_cfg, releases
from mlp_zoo.model_specs.pretrained_cfg import with_cfg
from test_mixer import to_jax
from weights_convert import CheckpointError, read_checkpoint

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5,) * 3, (0.5,) * 3)
# the table of issue 16, written out independently of model_specs: (crop_pct, crop_mode, interpolation, mean/std)
OFFICIAL = {
    ("smlpnet_s", "spach"): (0.875, "center", "bicubic", IMAGENET),
    ("vip_s14", "official"): (0.9, "center", "bicubic", IMAGENET),
    ("vip_s7", "official"): (0.9, "center", "bicubic", IMAGENET),
    ("vip_m7", "official"): (0.9, "center", "bicubic", IMAGENET),
    ("vip_l7", "official"): (0.875, "center", "bicubic", IMAGENET),
    ("convmlp_m", "official"): (0.9, "center", "bicubic", IMAGENET),
    ("mixer_b16", "timm"): (0.875, "center", "bicubic", HALF),
    ("mixer_b16", "timm_in21k"): (0.875, "center", "bicubic", HALF),
    ("mixer_l16", "goog"): (1.0, "squash", "bilinear", HALF),
}


@pytest.mark.parametrize("name, release", list(OFFICIAL))
def test_release_values_are_the_official_ones(name, release):
    crop_pct, crop_mode, interpolation, (mean, std) = OFFICIAL[name, release]
    cfg = pretrained_cfg(name, release)
    assert (cfg["crop_pct"], cfg["crop_mode"], cfg["interpolation"], cfg["mean"], cfg["std"]) == \
        (crop_pct, crop_mode, interpolation, mean, std)
    assert cfg["input_size"] == (3, 224, 224) and cfg["architecture"] == name and cfg["tag"] == release
    assert cfg["num_classes"] == (21843 if release.endswith("in21k") else 1000)
    assert cfg["label_names"] == ("imagenet-21k" if release.endswith("in21k") else "imagenet-1k")


def test_every_variant_has_a_default_and_smlp_resizes_to_256():
    for name in VARIANTS:
        assert pretrained_cfg(name) == pretrained_cfg(name, releases(name)[0])
    assert math.floor(224 / pretrained_cfg("smlpnet_b")["crop_pct"]) == 256  # SPACH: Resize(256), CenterCrop(224)
    with pytest.raises(ValueError, match="unknown release"):
        pretrained_cfg("vip_s7", "goog")


def both_cfgs(name: str, path, **kwargs) -> tuple[dict, dict]:
    return (models_pytorch.create_model(name, pretrained=path, **kwargs).pretrained_cfg,
            models_jittor.create_model(name, pretrained=path, **kwargs).pretrained_cfg)


def test_create_model_sets_the_detected_release_in_both_frameworks(tmp_path):
    state = random_state("mixer_s32")
    save_torch(tmp_path / "timm.pth", state)
    np.savez(tmp_path / "goog.npz", **to_jax(state))
    in21k = dict(state, **{"head.weight": np.zeros((21843, 512), np.float32),
                           "head.bias": np.zeros(21843, np.float32)})
    save_torch(tmp_path / "in21k.pth", in21k)
    for file, release in (("timm.pth", "timm"), ("goog.npz", "goog"), ("in21k.pth", "timm_in21k")):
        a, b = both_cfgs("mixer_s32", tmp_path / file)
        assert a == b == pretrained_cfg("mixer_s32", release), file
    # a class count of the user's own drops the label set; the user's img_size wins
    with pytest.warns(UserWarning, match="dropped head.weight"):
        a, b = both_cfgs("mixer_s32", tmp_path / "goog.npz", num_classes=10)
    assert a == b and a["tag"] == "goog" and a["num_classes"] == 10 and a["label_names"] is None
    small = random_state("mixer_s32", img_size=64)
    save_torch(tmp_path / "small.pth", small)
    a, b = both_cfgs("mixer_s32", tmp_path / "small.pth")
    assert a == b and a["input_size"] == (3, 64, 64)
    assert models_pytorch.create_model("smlpnet_t", img_size=256).pretrained_cfg["input_size"] == (3, 256, 256)
    assert models_jittor.create_model("vip_l7").pretrained_cfg == pretrained_cfg("vip_l7")


# what tools/finetune.py writes for mixer_s32 fine-tuned at 64 px on a folder of three classes (checked below)
FT_CFG = {"architecture": "mixer_s32", "tag": "finetune", "input_size": (3, 64, 64), "crop_pct": 0.875,
          "crop_mode": "center", "interpolation": "bicubic", "mean": HALF[0], "std": HALF[1], "num_classes": 3,
          "label_names": ["cat", "dog", "hen"]}


def test_ft_cfg_is_what_finetune_writes():
    from mlp_zoo.model_specs.pretrained_cfg import model_cfg
    from mlp_zoo.tools import finetune

    model = type("Model", (), {"pretrained_cfg": model_cfg("mixer_s32", img_size=64, num_classes=3)})()
    args = finetune.parse_args(["--model", "mixer_s32", "--img-size", "64"])
    assert finetune.training_cfg(model, args, ["cat", "dog", "hen"], {}) == FT_CFG


def test_fine_tune_checkpoint_carries_its_cfg_in_torch_and_jittor_files(tmp_path):
    from mlp_zoo.jittor_support.runtime import jt

    state = random_state("mixer_s32", img_size=64, num_classes=3)
    torch.save(with_cfg({k: torch.from_numpy(v) for k, v in state.items()}, FT_CFG), tmp_path / "ft.pth")
    jt.save(with_cfg(state, FT_CFG), str(tmp_path / "ft.pkl"))
    for file in ("ft.pth", "ft.pkl"):
        ckpt = read_checkpoint(tmp_path / file)  # the safe reader: no code run
        assert ckpt.pretrained_cfg == checkpoint_cfg(FT_CFG)
        a, b = both_cfgs("mixer_s32", tmp_path / file)
        assert a == b and a["label_names"] == ["cat", "dog", "hen"] and a["input_size"] == (3, 64, 64)
        assert a["mean"] == HALF[0] and a["crop_pct"] == 0.875 and a["tag"] == "finetune"


@pytest.mark.parametrize("bad, message", [
    ({"crop_pct": "0.9"}, "crop_pct"), ({"input_size": [3, 64, 32]}, "input_size"), ({"mean": [0.5, 0.5]}, "mean"),
    ({"std": [1, 0, 1]}, "std"), ({"label_names": ["a"]}, "label_names"), ({"interpolation": "magic"}, "interpolation"),
    ({"extra": 1}, "unknown keys"), ({"num_classes": -1}, "num_classes"),
])
def test_malformed_cfg_in_a_checkpoint_is_named(tmp_path, bad, message):
    state = random_state("mixer_s32", img_size=64, num_classes=3)
    cfg = {**FT_CFG, **bad}
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in state.items()}, "pretrained_cfg": cfg}, path)
    with pytest.raises(CheckpointError, match=f"bad.pth: .*{message}"):
        read_checkpoint(path)
    with pytest.raises(ValueError):
        with_cfg(state, cfg)
    # the cfg is plain data: it survives a round trip through JSON unchanged (tuples read back as lists)
    assert json.loads(json.dumps(cfg)) == {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
