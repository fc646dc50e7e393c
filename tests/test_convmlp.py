"""ConvMLP: the official SHI-Labs checkpoints load in both frameworks and compute the official function at
any input size."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import models_jittor
import models_pytorch
from conftest import REL_TOL
from helpers import official_manifest, pretrained_logits, random_from_manifest, run_convert, save_torch
from weights_convert.detect import detect

VARIANTS = ["convmlp_s", "convmlp_m", "convmlp_l"]


def official_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """SHI-Labs' ConvMLP written from the architecture notes, on the official keys (eval mode)."""
    def bn(t, p):
        return F.batch_norm(t, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                            sd[f"{p}.bias"], False, 0.0, 1e-5)

    def ln(t, p):
        return F.layer_norm(t, (t.shape[-1],), sd[f"{p}.weight"], sd[f"{p}.bias"], 1e-5)

    def mlp(t, p):
        t = F.gelu(F.linear(t, sd[f"{p}.fc1.weight"], sd[f"{p}.fc1.bias"]))
        return F.linear(t, sd[f"{p}.fc2.weight"], sd[f"{p}.fc2.bias"])

    def conv_bn_relu(t, p, i, stride=1):
        w = sd[f"{p}.{i}.weight"]
        return F.relu(bn(F.conv2d(t, w, stride=stride, padding=w.shape[-1] // 2), f"{p}.{i + 1}"))

    def downsample(t, p):  # channels-last in and out
        t = F.conv2d(t.permute(0, 3, 1, 2), sd[f"{p}.weight"], sd[f"{p}.bias"], stride=2, padding=1)
        return t.permute(0, 2, 3, 1)

    x = conv_bn_relu(x, "tokenizer.block", 0, stride=2)
    x = conv_bn_relu(conv_bn_relu(x, "tokenizer.block", 3), "tokenizer.block", 6)
    x = F.max_pool2d(x, 3, stride=2, padding=1)
    b = 0
    while f"conv_stages.conv_blocks.{b}.0.weight" in sd:
        p = f"conv_stages.conv_blocks.{b}"
        x = x + conv_bn_relu(conv_bn_relu(conv_bn_relu(x, p, 0), p, 3), p, 6)
        b += 1
    x = downsample(x.permute(0, 2, 3, 1), "conv_stages.downsample")
    s = 0
    while f"stages.{s}.blocks.0.norm1.weight" in sd:
        j = 0
        while f"stages.{s}.blocks.{j}.norm1.weight" in sd:
            p = f"stages.{s}.blocks.{j}"
            x = x + mlp(ln(x, f"{p}.norm1"), f"{p}.channel_mlp1")
            y = ln(x, f"{p}.connect_norm").permute(0, 3, 1, 2)
            x = F.conv2d(y, sd[f"{p}.connect.weight"], padding=1, groups=y.shape[1]).permute(0, 2, 3, 1)
            x = x + mlp(ln(x, f"{p}.norm2"), f"{p}.channel_mlp2")
            j += 1
        if f"stages.{s}.downsample_mlp.downsample.weight" in sd:
            x = downsample(x, f"stages.{s}.downsample_mlp.downsample")
        s += 1
    return F.linear(ln(x, "norm").mean((1, 2)), sd["head.weight"], sd["head.bias"])


@pytest.fixture(scope="module")
def official_s(tmp_path_factory):
    """A ConvMLP-S checkpoint as released: a raw state dict with the official keys."""
    state = random_from_manifest("convmlp_s")
    return save_torch(tmp_path_factory.mktemp("convmlp") / "convmlp_s_imagenet.pth", state), state


def all_three(path, state: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Logits of the official function, of our PyTorch model and of our Jittor model, both loaded from path."""
    with torch.no_grad():
        ref = official_forward({k: torch.from_numpy(v) for k, v in state.items()}, torch.from_numpy(x)).numpy()
    return (ref, *pretrained_logits("convmlp_s", path, x))


@pytest.mark.parametrize("name", VARIANTS)
def test_native_keys_are_the_official_ones_in_order(name: str):
    with torch.device("meta"):
        shapes = models_pytorch.state_shapes(models_pytorch.create_model(name))
    assert list(shapes.items()) == official_manifest(name)


@pytest.mark.parametrize("name", VARIANTS)
def test_official_layout_is_detected(name: str):
    state = {k: np.broadcast_to(np.float32(0), s) for k, s in official_manifest(name)}
    assert detect(state, name) == (name, {})
    state["head.weight"], state["head.bias"] = np.zeros((10, state["norm.weight"].shape[0])), np.zeros(10)
    assert detect(state, name) == (name, {"num_classes": 10})


def test_official_checkpoint_loads_and_computes_the_official_function(official_s):
    path, state = official_s
    tm = models_pytorch.create_model("convmlp_s", pretrained=path)
    assert all(np.array_equal(v.numpy(), state[k]) for k, v in tm.state_dict().items())
    jm = models_jittor.create_model("convmlp_s", pretrained=path)
    jittor_state = jm.state_dict()
    counters = [k for k in state if k.endswith("num_batches_tracked")]  # PyTorch's BatchNorm only
    assert len(counters) == 9 and sorted(jittor_state) == sorted(set(state) - set(counters))
    assert all(np.array_equal(v.numpy(), state[k]) for k, v in jittor_state.items())

    x = np.random.RandomState(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    ref, ours, theirs = all_three(path, state, x)
    scale = np.abs(ref).max()
    assert scale > 0.1
    assert np.abs(ours - ref).max() <= 1e-6 * scale
    assert np.abs(theirs - ref).max() <= REL_TOL * scale


@pytest.mark.parametrize("size", [(160, 192), (97, 131)])
def test_any_input_size_matches_across_frameworks(official_s, size: tuple[int, int]):
    path, state = official_s
    x = np.random.RandomState(2).standard_normal((2, 3, *size)).astype(np.float32)
    ref, ours, theirs = all_three(path, state, x)
    assert ref.shape == ours.shape == theirs.shape == (2, 1000)
    scale = np.abs(ref).max()
    assert scale > 0.1
    assert np.abs(ours - ref).max() <= 1e-6 * scale
    assert np.abs(theirs - ref).max() <= REL_TOL * scale


@pytest.mark.parametrize("name", VARIANTS)
def test_official_checkpoint_converts_with_detection(name: str, tmp_path):
    state = random_from_manifest(name, seed=3)
    src = save_torch(tmp_path / f"{name}_imagenet.pth", state)
    r = run_convert("torch2jittor", src, tmp_path / f"{name}.pkl")
    assert r.returncode == 0, r.stderr
    assert "native layout" in r.stdout and f"{name} (detected)" in r.stdout
    jm = models_jittor.create_model(name, pretrained=tmp_path / f"{name}.pkl")
    assert all(np.array_equal(v.numpy(), state[k]) for k, v in jm.state_dict().items())


def test_depthwise_conv_has_no_residual():
    from models_pytorch.convmlp import ConvMLPBlock

    block = ConvMLPBlock(8, 16).eval()
    with torch.no_grad():
        block.connect.weight.zero_()
        a, b = block(torch.randn(1, 5, 6, 8)), block(torch.randn(1, 5, 6, 8))
    assert torch.equal(a, b)  # everything before the conv is forgotten


def test_conv_bottleneck_branch_ends_in_relu():
    from models_pytorch.convmlp import ConvBottleneck

    block = ConvBottleneck(8, 16).eval()
    x = torch.randn(2, 8, 9, 7)
    with torch.no_grad():
        branch = block(x) - x
    assert branch.min() >= -1e-6 and branch.max() > 0.1


def test_drop_path_restarts_in_every_stage():
    with torch.device("meta"):
        model = models_pytorch.create_model("convmlp_m")
    rates = [[b.drop_path.drop_prob for b in s.blocks] for s in model.stages]
    assert [len(r) for r in rates] == [3, 6, 3]
    for r in rates:
        assert np.allclose(r, np.linspace(0.0, 0.1, len(r)))
