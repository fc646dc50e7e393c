"""MLP-Mixer: timm's and Google's JAX checkpoints load in both frameworks and compute the official function."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import models_jittor
import models_pytorch
from conftest import REL_TOL
from helpers import official_manifest, run_convert, save_torch
from mlp_zoo.model_specs import VARIANTS
from mlp_zoo.tools.pairs import cross_check
from weights_convert import CheckpointError, read_checkpoint
from weights_convert.detect import detect

MIXERS = [n for n, v in VARIANTS.items() if v.family == "mixer"]
REF_TOL = 1e-5  # float32 models against the float64 reference, relative to max |logit|

# timm's (native) module names -> Flax's, written out here independently of weights_convert
_TO_JAX = {"norm1": "LayerNorm_0", "mlp_tokens.fc1": "token_mixing/Dense_0", "mlp_tokens.fc2": "token_mixing/Dense_1",
           "norm2": "LayerNorm_1", "mlp_channels.fc1": "channel_mixing/Dense_0",
           "mlp_channels.fc2": "channel_mixing/Dense_1"}


def to_jax(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A timm-layout Mixer state dict as Google's flat .npz: Flax names, HWIO stem, (in, out) Dense kernels."""
    out = {}
    for key, value in state.items():
        module, param = key.rsplit(".", 1)
        if module.startswith("blocks."):
            _, i, part = module.split(".", 2)
            module = f"MixerBlock_{i}/{_TO_JAX[part]}"
        else:
            module = {"stem.proj": "stem", "norm": "pre_head_layer_norm", "head": "head"}[module]
        is_norm = "LayerNorm" in module or module == "pre_head_layer_norm"
        if param == "weight" and not is_norm:
            param, value = "kernel", value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
        elif param == "weight":
            param = "scale"
        out[f"{module}/{param}"] = np.ascontiguousarray(value)
    return out


def random_mixer_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights of these shapes that keep activations O(1) and make tanh and exact GELU differ
    visibly: norm scales near 1, small biases, every matrix (the head too) of gain 2."""
    rng = np.random.RandomState(seed)
    state = {}
    for key, shape in shapes.items():
        if len(shape) == 1:
            offset = 1.0 if "norm" in key and key.endswith("weight") else 0.0
            state[key] = (offset + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            state[key] = (2 * rng.standard_normal(shape) / math.sqrt(math.prod(shape[1:]))).astype(np.float32)
    return state


def official_forward(params: dict[str, np.ndarray], x_nhwc: np.ndarray, gelu: str = "tanh") -> np.ndarray:
    """Google's JAX Mixer written from the architecture notes, in float64 numpy on the .npz arrays."""
    p = {k: v.astype(np.float64) for k, v in params.items()}

    def layer_norm(t, name):
        centred = t - t.mean(-1, keepdims=True)
        return centred / np.sqrt((centred ** 2).mean(-1, keepdims=True) + 1e-6) * p[f"{name}/scale"] + p[f"{name}/bias"]

    def act(t):
        if gelu == "tanh":
            return 0.5 * t * (1 + np.tanh(math.sqrt(2 / math.pi) * (t + 0.044715 * t ** 3)))
        return 0.5 * t * (1 + torch.erf(torch.from_numpy(t / math.sqrt(2))).numpy())

    def mlp(t, name):
        t = act(t @ p[f"{name}/Dense_0/kernel"] + p[f"{name}/Dense_0/bias"])
        return t @ p[f"{name}/Dense_1/kernel"] + p[f"{name}/Dense_1/bias"]

    kernel = p["stem/kernel"]  # (p, p, in, C)
    size, dim = kernel.shape[0], kernel.shape[-1]
    b, h, w, c = x_nhwc.shape
    patches = x_nhwc.astype(np.float64).reshape(b, h // size, size, w // size, size, c)
    patches = patches.transpose(0, 1, 3, 2, 4, 5).reshape(b, -1, size * size * c)  # row-major grid of patches
    x = patches @ kernel.reshape(-1, dim) + p["stem/bias"]
    depth = len({k.split("/")[0] for k in p if k.startswith("MixerBlock_")})
    for i in range(depth):
        y = layer_norm(x, f"MixerBlock_{i}/LayerNorm_0").swapaxes(1, 2)
        x = x + mlp(y, f"MixerBlock_{i}/token_mixing").swapaxes(1, 2)
        x = x + mlp(layer_norm(x, f"MixerBlock_{i}/LayerNorm_1"), f"MixerBlock_{i}/channel_mixing")
    x = layer_norm(x, "pre_head_layer_norm").mean(1)
    return x @ p["head/kernel"] + p["head/bias"]


def run_both(name: str, path, x_nchw: np.ndarray, **kwargs) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Logits of ``create_model(name, pretrained=path)`` in PyTorch and Jittor, and the GELU kind each uses."""
    from mlp_zoo.jittor_support.runtime import jt
    from models_jittor.layers import TanhGELU

    tm = models_pytorch.create_model(name, pretrained=path, **kwargs).eval()
    with torch.no_grad():
        a = tm(torch.from_numpy(x_nchw)).numpy()
    jm = models_jittor.create_model(name, pretrained=path, **kwargs)
    jm.eval()
    with jt.no_grad():
        b = jm(jt.array(x_nchw)).numpy()
    t_act, j_act = tm.blocks[0].mlp_tokens.act, jm.blocks[-1].mlp_channels.act
    return a, b, t_act.approximate, "tanh" if isinstance(j_act, TanhGELU) else "exact"


@pytest.fixture(scope="module")
def s32(tmp_path_factory):
    """Mixer-S/32 weights as timm releases them (.pth, .safetensors) and as Google does (.npz), and an input."""
    from safetensors.numpy import save_file

    folder = tmp_path_factory.mktemp("mixer")
    state = random_mixer_state(dict(official_manifest("mixer_s32")))
    save_torch(folder / "timm.pth", state)
    save_file(state, str(folder / "timm.safetensors"))
    np.savez(folder / "jax.npz", **to_jax(state))
    x_nhwc = np.random.RandomState(1).standard_normal((2, 224, 224, 3)).astype(np.float32)
    return folder, state, x_nhwc


def test_native_keys_are_timms_official_ones():
    for name in MIXERS:
        with torch.device("meta"):
            shapes = models_pytorch.state_shapes(models_pytorch.create_model(name))
        assert list(shapes.items()) == official_manifest(name), name


def test_detection_tells_all_variants_apart():
    for name in MIXERS:
        shapes_only = {k: np.broadcast_to(np.float32(0), s) for k, s in official_manifest(name)}
        assert detect(shapes_only, name) == (name, {})
    with torch.device("meta"):
        model = models_pytorch.create_model("mixer_b32", img_size=320, num_classes=10, in_chans=1)
    state = {k: np.broadcast_to(np.float32(0), s) for k, s in models_pytorch.state_shapes(model).items()}
    assert detect(state, "b32") == ("mixer_b32", {"img_size": 320, "num_classes": 10, "in_chans": 1})


def test_published_macs_are_reproduced():
    from mlp_zoo.tools.macs import torch_macs

    for name in MIXERS:
        macs = torch_macs(name) / 1e9
        if VARIANTS[name].macs is not None:
            assert round(macs, 2) == VARIANTS[name].macs, name
    assert round(torch_macs("mixer_l32") / 1e9, 2) == 11.25  # unpublished; the same count on the official code


def test_init_follows_timm_and_jax():
    model = models_pytorch.create_model("mixer_s16")
    sd = model.state_dict()
    assert not sd["head.weight"].any() and not sd["head.bias"].any()  # zero head, as in both originals
    assert sd["stem.proj.weight"].std().item() == pytest.approx(math.sqrt(1 / (3 * 16 * 16)), rel=0.05)  # lecun
    fc1 = sd["blocks.3.mlp_channels.fc1.weight"]
    assert fc1.abs().max().item() <= math.sqrt(6 / (512 + 2048))  # xavier-uniform bound
    assert fc1.std().item() == pytest.approx(math.sqrt(2 / (512 + 2048)), rel=0.05)
    assert sd["blocks.3.mlp_tokens.fc2.bias"].abs().max().item() < 1e-5
    assert model.blocks[0].norm1.eps == 1e-6 and model.norm.eps == 1e-6


@pytest.mark.parametrize("file", ["timm.pth", "timm.safetensors"])
def test_timm_checkpoint_loads_in_both_frameworks(s32, file):
    folder, state, x_nhwc = s32
    x = np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
    ours, theirs, t_gelu, j_gelu = run_both("mixer_s32", folder / file, x)
    assert (t_gelu, j_gelu) == ("none", "exact")  # timm's port uses exact GELU
    ref = official_forward(to_jax(state), x_nhwc, gelu="exact")
    scale = np.abs(ref).max()
    assert scale > 0.5
    assert np.abs(ours - ref).max() <= REF_TOL * scale
    assert np.abs(theirs - ref).max() <= REF_TOL * scale


def test_jax_npz_uses_tanh_gelu_and_reproduces_jax(s32):
    folder, state, x_nhwc = s32
    x = np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
    ckpt = read_checkpoint(folder / "jax.npz")
    assert ckpt.layout == "Google JAX MLP-Mixer" and ckpt.model_kwargs == {"gelu": "tanh"}
    assert set(ckpt.state) == set(state) and all(np.array_equal(ckpt.state[k], v) for k, v in state.items())
    ours, theirs, t_gelu, j_gelu = run_both("mixer_s32", folder / "jax.npz", x)
    assert (t_gelu, j_gelu) == ("tanh", "tanh")
    ref = official_forward(to_jax(state), x_nhwc, gelu="tanh")
    scale = np.abs(ref).max()
    assert np.abs(ours - ref).max() <= REF_TOL * scale
    assert np.abs(theirs - ref).max() <= REF_TOL * scale
    # an explicit gelu= wins over the file's: exact GELU computes visibly different logits
    exact, exact_j, t_gelu, j_gelu = run_both("mixer_s32", folder / "jax.npz", x, gelu="exact")
    assert (t_gelu, j_gelu) == ("none", "exact")
    assert np.abs(exact - ref).max() > 5 * REF_TOL * scale
    assert np.abs(exact - official_forward(to_jax(state), x_nhwc, gelu="exact")).max() <= REF_TOL * scale
    assert np.abs(exact_j - exact).max() <= REL_TOL * scale


def test_incomplete_jax_npz_is_refused(s32, tmp_path):
    folder, state, _ = s32
    params = {k: v for k, v in to_jax(state).items() if not k.startswith("MixerBlock_7/")}
    np.savez(tmp_path / "cut.npz", **params)
    with pytest.raises(CheckpointError, match="12 missing keys"):
        models_pytorch.create_model("mixer_s32", pretrained=tmp_path / "cut.npz")


@pytest.mark.parametrize("file", ["timm.pth", "timm.safetensors", "jax.npz"])
def test_convert_cli_detects_mixer(s32, file, tmp_path):
    folder, state, _ = s32
    args = ["--verify"] if file == "jax.npz" else []
    r = run_convert("torch2jittor", folder / file, tmp_path / "out.pkl", *args)
    assert r.returncode == 0, r.stderr
    if file == "jax.npz":
        assert "Google JAX MLP-Mixer layout" in r.stdout and "mixer_s32 (detected, gelu=tanh)" in r.stdout
        assert r.stdout.strip().splitlines()[-1].endswith("OK")
    else:
        assert "native layout" in r.stdout and "mixer_s32 (detected)" in r.stdout
    converted = read_checkpoint(tmp_path / "out.pkl").state
    assert set(converted) == set(state) and all(np.array_equal(converted[k], v) for k, v in state.items())


def test_other_input_sizes_resize_the_token_mlp():
    with torch.device("meta"):
        state = random_mixer_state(models_pytorch.state_shapes(models_pytorch.create_model("mixer_s16", img_size=128)))
    assert state["blocks.0.mlp_tokens.fc1.weight"].shape == (256, 64)
    assert detect(state, "s16@128") == ("mixer_s16", {"img_size": 128})
    check = cross_check("mixer_s16", state, batch=1, img_size=128)
    assert check.max_abs_diff <= REL_TOL * check.max_abs_logit
    model = models_pytorch.create_model("mixer_s16", img_size=(96, 160))
    assert model.blocks[0].mlp_tokens.fc1.weight.shape == (256, 60)
    assert model(torch.zeros(1, 3, 96, 160)).shape == (1, 1000)
    with pytest.raises(CheckpointError, match="not a square grid"):
        detect({k: v.detach().numpy() for k, v in model.state_dict().items()}, "s16@96x160")
    with pytest.raises(ValueError, match="divisible by the patch size"):
        models_pytorch.create_model("mixer_s16", img_size=200)
