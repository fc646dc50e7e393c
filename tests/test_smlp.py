"""sMLPNet: SPACH's official checkpoints load in both frameworks and compute the official function."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import models_jittor
import models_pytorch
from conftest import REL_TOL, random_state
from helpers import official_manifest, pretrained_logits, random_from_manifest, run_convert, save_torch
from mlp_zoo.tools.pairs import cross_check


def official_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """SPACH's sMLPNet written from the architecture notes, on the official keys (eval mode)."""
    def bn(t, p):
        return F.batch_norm(t, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                            sd[f"{p}.bias"], False, 0.0, 1e-5)

    n_stages = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("to_patch_embedding."))
    n_blocks = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("token_mix."))
    block = 0
    for s in range(n_stages):
        w = sd[f"to_patch_embedding.{s}.0.weight"]
        x = F.conv2d(x, w, stride=w.shape[-1])
        while block < n_blocks and sd[f"token_mix.{block}.1.fuse.weight"].shape[0] == x.shape[1]:
            t, c = f"token_mix.{block}", x.shape[1]
            y = F.conv2d(F.gelu(bn(x, f"{t}.0.conv_merge.BN")), sd[f"{t}.0.conv_merge.Conv.weight"],
                         padding=1, groups=c)
            y = F.gelu(bn(y, f"{t}.1.BN"))
            # the official permutes: proj_h sees W as channels, proh_w sees H as channels
            y_a = F.conv2d(y.permute(0, 3, 1, 2), sd[f"{t}.1.proj_h.weight"], sd[f"{t}.1.proj_h.bias"])
            y_b = F.conv2d(y.permute(0, 2, 1, 3), sd[f"{t}.1.proh_w.weight"], sd[f"{t}.1.proh_w.bias"])
            y = torch.cat([y, y_a.permute(0, 2, 3, 1), y_b.permute(0, 2, 1, 3)], dim=1)
            x = x + F.conv2d(y, sd[f"{t}.1.fuse.weight"])
            m = f"channel_mix.{block}"
            z = F.layer_norm(x.permute(0, 2, 3, 1), (c,), sd[f"{m}.1.weight"], sd[f"{m}.1.bias"], 1e-5)
            z = F.linear(F.gelu(F.linear(z, sd[f"{m}.2.net.0.weight"], sd[f"{m}.2.net.0.bias"])),
                         sd[f"{m}.2.net.3.weight"], sd[f"{m}.2.net.3.bias"])
            x = x + z.permute(0, 3, 1, 2)
            block += 1
    x = bn(x, "batch_norm").mean((2, 3))
    return F.linear(x, sd["mlp_head.0.weight"], sd["mlp_head.0.bias"])


@pytest.fixture(scope="module")
def spach_t(tmp_path_factory):
    """A SPACH training checkpoint of sMLPNet-T: 'model', 'model_ema', an argparse Namespace, the epoch."""
    state = random_from_manifest("smlpnet_t")
    path = tmp_path_factory.mktemp("spach") / "smlp_t.pth"
    ema = {k: v + 1 for k, v in state.items() if v.dtype == np.float32}
    save_torch(path, state, wrap="model", model_ema=ema, epoch=299,
               args=argparse.Namespace(model="smlpnet_tiny", drop_path=0.0))
    return path, state


def test_manifest_shapes_map_onto_native_model():
    from weights_convert.layouts import to_native

    native, layout = to_native({k: np.zeros(s, np.float32) for k, s in official_manifest("smlpnet_s")})
    assert layout is not None and layout.name == "SPACH sMLPNet"
    with torch.device("meta"):
        expected = models_pytorch.state_shapes(models_pytorch.create_model("smlpnet_s"))
    assert {k: v.shape for k, v in native.items()} == expected


def test_spach_checkpoint_reproduces_official_function_in_both_frameworks(spach_t):
    path, state = spach_t
    x = np.random.RandomState(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        ref = official_forward({k: torch.from_numpy(v) for k, v in state.items()}, torch.from_numpy(x)).numpy()
    ours, theirs = pretrained_logits("smlpnet_t", path, x)
    scale = np.abs(ref).max()
    assert scale > 0.1
    assert np.abs(ours - ref).max() <= REL_TOL * scale
    assert np.abs(theirs - ref).max() <= REL_TOL * scale


def test_spach_checkpoint_converts_with_detection(spach_t, tmp_path):
    path, _ = spach_t
    r = run_convert("torch2jittor", path, tmp_path / "s.pkl")
    assert r.returncode == 0, r.stderr
    assert "SPACH sMLPNet layout" in r.stdout and "smlpnet_t (detected)" in r.stdout
    ema = run_convert("torch2jittor", path, tmp_path / "e.pkl", "--ema")
    assert ema.returncode == 0 and "'model_ema'" in ema.stdout


def test_non_square_input(tmp_path):
    state = random_state("smlpnet_t", img_size=(160, 224))
    check = cross_check("smlpnet_t", state, batch=1, img_size=(160, 224))
    assert check.max_abs_diff <= REL_TOL * check.max_abs_logit
    save_torch(tmp_path / "ns.pth", state)
    r = run_convert("torch2jittor", tmp_path / "ns.pth", tmp_path / "ns.pkl")
    assert r.returncode == 0 and "img_size=(160, 224)" in r.stdout, r.stderr
    jm = models_jittor.create_model("smlpnet_t", pretrained=tmp_path / "ns.pkl", img_size=(160, 224))
    assert jm.img_size == (160, 224)


def test_drop_path_schedule_is_official_linear():
    model = models_pytorch.create_model("smlpnet_b")
    rates = [b.drop_path.drop_prob for s in model.stages for b in s.blocks]
    assert len(rates) == 38 and rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    assert np.allclose(np.diff(rates), 0.3 / 37)
