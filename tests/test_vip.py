"""Vision Permutator: the official checkpoint layout loads in both frameworks, is detected, and the models
compute the official function; the Weighted Permute-MLP equals a reference written from the notes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import models_jittor
import models_pytorch
from conftest import REL_TOL
from helpers import official_manifest, pretrained_logits, random_from_manifest, run_convert, save_torch
from mlp_zoo.model_specs import variant
from models_jittor.vip import WeightedPermuteMlp as JittorPermuteMlp
from models_pytorch.vip import WeightedPermuteMlp as TorchPermuteMlp
from weights_convert.detect import detect
from weights_convert.layouts import to_native

VARIANTS = ["vip_s14", "vip_s7", "vip_m7", "vip_l7"]


def reference_permute_mlp(sd: dict[str, torch.Tensor], p: str, x: torch.Tensor, segments: int) -> torch.Tensor:
    """The Weighted Permute-MLP from the architecture notes, on the official keys under ``p``: the C x C
    branch weights read as (H_out, S_out, H_in, S_in) maps over segment-major channels, the reweighting
    logits of channel c at 3c, 3c + 1, 3c + 2."""
    B, H, W, C = x.shape
    S = C // segments
    xs = x.reshape(B, H, W, segments, S)
    h = torch.einsum("pqhs,bhwgs->bpwgq", sd[f"{p}.mlp_h.weight"].reshape(H, S, H, S), xs).reshape(B, H, W, C)
    w = torch.einsum("pqws,bhwgs->bhpgq", sd[f"{p}.mlp_w.weight"].reshape(W, S, W, S), xs).reshape(B, H, W, C)
    c = x @ sd[f"{p}.mlp_c.weight"].T
    pooled = (h + w + c).mean((1, 2))
    z = F.gelu(F.linear(pooled, sd[f"{p}.reweight.fc1.weight"], sd[f"{p}.reweight.fc1.bias"]))
    z = F.linear(z, sd[f"{p}.reweight.fc2.weight"], sd[f"{p}.reweight.fc2.bias"])
    a = torch.softmax(torch.stack([z[:, 0::3], z[:, 1::3], z[:, 2::3]]), dim=0)[:, :, None, None, :]
    return F.linear(h * a[0] + w * a[1] + c * a[2], sd[f"{p}.proj.weight"], sd[f"{p}.proj.bias"])


def official_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The official ViP from the architecture notes, on the official keys (eval mode)."""
    def ln(t, p):
        return F.layer_norm(t, (t.shape[-1],), sd[f"{p}.weight"], sd[f"{p}.bias"], 1e-5)

    w = sd["patch_embed.proj.weight"]
    x = F.conv2d(x, w, sd["patch_embed.proj.bias"], stride=w.shape[-1]).permute(0, 2, 3, 1)
    i = 0
    while f"network.{i}.proj.weight" in sd or f"network.{i}.0.norm1.weight" in sd:
        if f"network.{i}.proj.weight" in sd:
            x = F.conv2d(x.permute(0, 3, 1, 2), sd[f"network.{i}.proj.weight"], sd[f"network.{i}.proj.bias"],
                         stride=2).permute(0, 2, 3, 1)
        j = 0
        while f"network.{i}.{j}.norm1.weight" in sd:
            p = f"network.{i}.{j}"
            x = x + reference_permute_mlp(sd, f"{p}.attn", ln(x, f"{p}.norm1"), x.shape[1])  # grid == segments
            y = F.gelu(F.linear(ln(x, f"{p}.norm2"), sd[f"{p}.mlp.fc1.weight"], sd[f"{p}.mlp.fc1.bias"]))
            x = x + F.linear(y, sd[f"{p}.mlp.fc2.weight"], sd[f"{p}.mlp.fc2.bias"])
            j += 1
        i += 1
    return F.linear(ln(x, "norm").mean((1, 2)), sd["head.weight"], sd["head.bias"])


@pytest.fixture(scope="module")
def official_s7() -> dict[str, np.ndarray]:
    return random_from_manifest("vip_s7")


def native_of(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    native, layout = to_native(state)
    assert layout is not None and layout.name == "official ViP"
    return native


@pytest.mark.parametrize("name", VARIANTS)
def test_official_layout_maps_onto_native_model_and_is_detected(name: str):
    native = native_of({k: np.zeros(s, np.float32) for k, s in official_manifest(name)})
    with torch.device("meta"):
        expected = models_pytorch.state_shapes(models_pytorch.create_model(name))
    assert {k: v.shape for k, v in native.items()} == expected
    assert detect(native, name) == (name, {})


# ViP-S/7's network.3 follows the 3 blocks of network.2 in the second stage
@pytest.mark.parametrize("official, native, dim, segments", [("network.0.0", "stages.0.blocks.0", 192, 32),
                                                             ("network.3.5", "stages.1.blocks.8", 384, 16)])
def test_permute_mlp_equals_reference(official_s7, official: str, native: str, dim: int, segments: int):
    from mlp_zoo.jittor_support.runtime import jt

    sd = {k: torch.from_numpy(v) for k, v in official_s7.items()}
    prefix = f"{native}.permute_mlp."
    weights = {k[len(prefix):]: v for k, v in native_of(official_s7).items() if k.startswith(prefix)}
    x = np.random.RandomState(2).standard_normal((2, segments, segments, dim)).astype(np.float32)
    with torch.no_grad():
        ref = reference_permute_mlp(sd, f"{official}.attn", torch.from_numpy(x), segments).numpy()
        tm = TorchPermuteMlp(dim, segments)
        models_pytorch.load_state(tm, weights)
        ours = tm(torch.from_numpy(x)).numpy()
    jm = JittorPermuteMlp(dim, segments)
    models_jittor.load_state(jm, weights)
    theirs = jm(jt.array(x)).numpy()
    assert np.abs(ref).max() > 1.0
    assert np.abs(ours - ref).max() <= 1e-5
    assert np.abs(theirs - ref).max() <= 1e-5
    # the test tells the layouts apart: branch-major reweighting logits give another function
    key = f"{official}.attn.reweight.fc2.weight"
    swapped = dict(sd, **{key: sd[key].reshape(3, dim, -1).transpose(0, 1).reshape(3 * dim, -1)})
    with torch.no_grad():
        other = reference_permute_mlp(swapped, f"{official}.attn", torch.from_numpy(x), segments).numpy()
    assert np.abs(other - ref).max() > 1e-2


@pytest.mark.parametrize("wrap, prefix", [(None, ""), ("state_dict", ""), ("state_dict_ema", "module.")])
def test_official_checkpoint_loads_in_both_frameworks(official_s7, tmp_path, wrap: str | None, prefix: str):
    path = save_torch(tmp_path / "vip_s7.pth", {prefix + k: v for k, v in official_s7.items()}, wrap=wrap,
                      epoch=299)
    native = native_of(official_s7)
    tm = models_pytorch.create_model("vip_s7", pretrained=path)
    jm = models_jittor.create_model("vip_s7", pretrained=path)
    for model in (tm, jm):
        loaded = {k: v.numpy() for k, v in model.state_dict().items()}
        assert loaded.keys() == native.keys()
        assert all(np.array_equal(loaded[k], v) for k, v in native.items())


def test_official_checkpoint_reproduces_official_function(official_s7, tmp_path):
    path = save_torch(tmp_path / "vip_s7.pth", {"module." + k: v for k, v in official_s7.items()},
                      wrap="state_dict_ema")
    x = np.random.RandomState(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        sd = {k: torch.from_numpy(v) for k, v in official_s7.items()}
        ref = official_forward(sd, torch.from_numpy(x)).numpy()
    ours, theirs = pretrained_logits("vip_s7", path, x)
    scale = np.abs(ref).max()
    assert scale > 0.1
    assert np.abs(ours - ref).max() <= REL_TOL * scale
    assert np.abs(theirs - ref).max() <= REL_TOL * scale


@pytest.mark.parametrize("name, wrap, prefix", [("vip_s7", "state_dict_ema", "module."), ("vip_s14", None, "")])
def test_official_checkpoint_converts_with_detection(name: str, wrap: str | None, prefix: str, tmp_path):
    state = random_from_manifest(name, seed=3)
    src = save_torch(tmp_path / f"{name}.pth", {prefix + k: v for k, v in state.items()}, wrap=wrap)
    r = run_convert("torch2jittor", src, tmp_path / f"{name}.pkl")
    assert r.returncode == 0, r.stderr
    assert "official ViP layout" in r.stdout and f"{name} (detected)" in r.stdout
    jm = models_jittor.create_model(name, pretrained=tmp_path / f"{name}.pkl")
    native = native_of(state)
    assert all(np.array_equal(v.numpy(), native[k]) for k, v in jm.state_dict().items())


@pytest.mark.parametrize("name, rate", [("vip_s14", 0.1), ("vip_s7", 0.1), ("vip_m7", 0.2), ("vip_l7", 0.3)])
def test_drop_path_schedule_is_linear_over_all_blocks(name: str, rate: float):
    with torch.device("meta"):
        model = models_pytorch.create_model(name)
    rates = [b.drop_path.drop_prob for s in model.stages for b in s.blocks]
    n = sum(variant(name).config["depths"])
    assert len(rates) == n and rates[0] == 0.0
    assert np.allclose(rates, rate * np.arange(n) / (n - 1))


def test_official_init():
    torch.manual_seed(0)
    tm = models_pytorch.create_model("vip_s7")
    jm = models_jittor.create_model("vip_s7")
    for name, state in (("torch", {k: v.numpy() for k, v in tm.state_dict().items()}),
                        ("jittor", {k: v.numpy() for k, v in jm.state_dict().items()})):
        linear = [k[:-len(".weight")] for k, v in state.items() if v.ndim == 2]
        weights = np.concatenate([state[f"{k}.weight"].ravel() for k in linear])
        assert abs(weights.std() - 0.02) < 5e-4 and np.abs(weights).max() <= 2.0, name
        assert all(not state[f"{k}.bias"].any() for k in linear if f"{k}.bias" in state), name
        assert not any(f"{k}.bias" in state for k in linear if k.endswith(("mix_c", "mix_h", "mix_w"))), name


def test_token_grid_must_equal_segment_dim():
    from mlp_zoo.jittor_support.runtime import jt

    with pytest.raises(ValueError, match="16x16 token grid"):
        TorchPermuteMlp(384, 16)(torch.zeros(1, 14, 14, 384))
    with pytest.raises(ValueError, match="16x16 token grid"):
        JittorPermuteMlp(384, 16)(jt.zeros((1, 14, 14, 384)))
