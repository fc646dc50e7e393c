"""Token-mixing weights at a new input size: the resize operator, what the resampling preserves exactly, both
frameworks on the resampled models, refusals (weights_convert/resample.py, create_model, convert.py)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import models_pytorch
from conftest import REL_TOL, random_state
from helpers import run_convert, save_torch
from models_pytorch.mixer import TokenMlp
from models_pytorch.smlp import AxialMix
from weights_convert import CheckpointError
from weights_convert.resample import (resample_axial, resample_permute, resample_state, resample_token_mlp,
                                      resize_matrix)

EXACT = 1e-5  # relative: what a float32 product of an exact identity may lose

# small variants: the architecture arguments override the registered ones; the first sizes are the files' own
SMALL = {
    "mixer_s16": (dict(depth=2, embed_dim=32, tokens_dim=16, channels_dim=64, img_size=64),
                  [(32, 32), (96, 96), (64, 112)]),
    "smlpnet_t": (dict(embed_dim=8, depths=(1, 1, 1, 1), img_size=64), [(32, 32), (96, 96), (64, 128)]),
    # ViP only shrinks (square): its two smaller sizes; larger and non-square are refused below
    "vip_s7": (dict(depths=(1, 1), embed_dims=(32, 64)), [(56, 56), (28, 28)]),
}


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _torch_resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """(..., H, W) resized by PyTorch itself: the reference the operator is checked against."""
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)


@pytest.mark.parametrize("kernel", ["bilinear", "bicubic"])
@pytest.mark.parametrize("n,m", [(4, 7), (14, 24), (7, 7), (16, 7), (8, 3), (2, 1)])
def test_resize_matrix_is_torch_interpolate_with_antialias(kernel, n, m):
    basis = torch.eye(n, dtype=torch.float64)[:, None, None, :]  # n images of one row
    reference = _torch_resize(basis, (1, m), kernel)[:, 0, 0, :].T.numpy()
    r = resize_matrix(n, m, kernel)
    np.testing.assert_allclose(r, reference, atol=1e-12)
    np.testing.assert_allclose(r.sum(1), 1.0, atol=1e-12)  # constants stay constant: biases resample exactly
    if m >= n:  # upsampling: full column rank, the PI-resize is an exact left inverse
        np.testing.assert_allclose(np.linalg.pinv(r) @ r, np.eye(n), atol=1e-9)


@pytest.mark.parametrize("new", [(6, 6), (5, 9), (4, 4)])
def test_mixer_token_mlp_on_an_upsampled_grid_is_exact(new):
    """fc1's pre-activation on the bilinear upsampling of a grid equals the old one, and the whole token MLP's
    output is the upsampling of the old output: mlp'(R x) = R mlp(x)."""
    torch.manual_seed(0)
    old, channels = (4, 4), 8
    mlp = TokenMlp(16, 12).double()
    x = torch.randn(2, *old, channels, dtype=torch.float64)  # (B, H, W, C) token grid
    up = _torch_resize(x.permute(0, 3, 1, 2), new).permute(0, 2, 3, 1)  # torch's bilinear, not our operator
    new_mlp = TokenMlp(new[0] * new[1], 12).double()
    w1, w2, b2 = resample_token_mlp(mlp.fc1.weight.detach().numpy(), mlp.fc2.weight.detach().numpy(),
                                    mlp.fc2.bias.detach().numpy(), old, new, "pi")
    with torch.no_grad():
        new_mlp.fc1.weight.copy_(torch.from_numpy(w1))
        new_mlp.fc1.bias.copy_(mlp.fc1.bias)
        new_mlp.fc2.weight.copy_(torch.from_numpy(w2))
        new_mlp.fc2.bias.copy_(torch.from_numpy(b2))
        tokens, new_tokens = x.reshape(2, -1, channels), up.reshape(2, -1, channels)
        pre = torch.einsum("kn,bnc->bkc", mlp.fc1.weight, tokens) + mlp.fc1.bias[:, None]
        new_pre = torch.einsum("kn,bnc->bkc", new_mlp.fc1.weight, new_tokens) + new_mlp.fc1.bias[:, None]
        assert _rel(new_pre.numpy(), pre.numpy()) < EXACT
        out = mlp(tokens).reshape(2, *old, channels).permute(0, 3, 1, 2)
        expected = _torch_resize(out, new).permute(0, 2, 3, 1).reshape(2, -1, channels)
        assert _rel(new_mlp(new_tokens).numpy(), expected.numpy()) < EXACT
        # interpolating the weights instead is not exact: the test can tell the methods apart
        w1i = resample_token_mlp(mlp.fc1.weight.detach().numpy(), mlp.fc2.weight.detach().numpy(),
                                 mlp.fc2.bias.detach().numpy(), old, new, "interp")[0]
        interp_pre = torch.einsum("kn,bnc->bkc", torch.from_numpy(w1i), new_tokens) + mlp.fc1.bias[:, None]
        if new != old:
            assert _rel(interp_pre.numpy(), pre.numpy()) > 1e-3


@pytest.mark.parametrize("new", [(12, 12), (12, 20), (8, 8)])
def test_smlp_sparse_mlp_commutes_with_upsampling(new):
    """sMLPNet's property: each axial mix, and so the sparse MLP [identity, W-mix, H-mix] fused by the 1x1 conv,
    commutes with the separable upsampling: part'(R_h x R_w^T) = R_h part(x) R_w^T."""
    torch.manual_seed(0)
    old, c = (8, 8), 6
    mix_h, mix_w = AxialMix(old[0], "h").double(), AxialMix(old[1], "w").double()
    new_h, new_w = AxialMix(new[0], "h").double(), AxialMix(new[1], "w").double()
    for src, dst in ((mix_h, new_h), (mix_w, new_w)):
        w, b = resample_axial(src.weight.detach().numpy(), src.bias.detach().numpy(), dst.weight.shape[0])
        with torch.no_grad():
            dst.weight.copy_(torch.from_numpy(w))
            dst.bias.copy_(torch.from_numpy(b))
    fuse = torch.randn(c, 3 * c, dtype=torch.float64)
    x = torch.randn(2, *old, c, dtype=torch.float64)  # channels-last, as the blocks keep it

    def up(t: torch.Tensor) -> torch.Tensor:
        return _torch_resize(t.permute(0, 3, 1, 2), new).permute(0, 2, 3, 1)

    with torch.no_grad():
        for a, b in ((mix_h, new_h), (mix_w, new_w)):
            assert _rel(b(up(x)).numpy(), up(a(x)).numpy()) < EXACT
        part = F.linear(torch.cat([x, mix_w(x), mix_h(x)], -1), fuse)
        xu = up(x)
        new_part = F.linear(torch.cat([xu, new_w(xu), new_h(xu)], -1), fuse)
        assert _rel(new_part.numpy(), up(part).numpy()) < EXACT


@pytest.mark.parametrize("old,new", [(8, 4), (8, 2), (4, 1)])
def test_vip_branch_is_the_old_one_per_old_segment(old, new):
    """ViP shrinking g -> g' (g' | g): the official H branch (one C x C Linear on each segment's (grid, S') slice,
    S' = C / g') equals, on every old segment of S = C / g channels, R W R^+ (exact identity, R R^+ = I)."""
    rng = np.random.RandomState(0)
    c = 16
    s, s_new = c // old, c // new
    weight = rng.standard_normal((c, c))
    x = rng.standard_normal((3, new, c))  # (W columns, grid H, C), one image
    ours = resample_permute(weight, old, new)
    # the official reshape: channels segment-major (G', S'), a row of the Linear input is (H, S') H-major
    rows = x.reshape(3, new, new, s_new).transpose(0, 2, 1, 3).reshape(3, new, new * s_new)
    branch = (rows @ ours.T).reshape(3, new, new, s_new).transpose(0, 2, 1, 3).reshape(3, new, c)
    r = resize_matrix(old, new)
    lift = np.linalg.pinv(r)
    for j in range(c // s):  # each old segment
        seg = x[:, :, j * s:(j + 1) * s]  # (3, g', S)
        mixed = np.einsum("hg,wgs->whs", lift, seg).reshape(3, old * s) @ weight.T
        expected = np.einsum("ah,whs->was", r, mixed.reshape(3, old, s))
        np.testing.assert_allclose(branch[:, :, j * s:(j + 1) * s], expected, atol=1e-10)


@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    """A small trained-looking checkpoint of each family at its own size (random weights, PyTorch file)."""
    root = tmp_path_factory.mktemp("resample")
    files = {}
    torch.manual_seed(0)
    for name, (config, _) in SMALL.items():
        model = models_pytorch.create_model(name, num_classes=10, **config)
        files[name] = root / f"{name}.pth"
        torch.save(model.state_dict(), files[name])
    return files


def _arch(name: str) -> dict:
    return {k: v for k, v in SMALL[name][0].items() if k != "img_size"}


def _create(framework: str, name: str, path: Path, size, **kwargs):
    if framework == "torch":
        module = models_pytorch
    else:
        import models_jittor as module
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = module.create_model(name, pretrained=path, img_size=size, **_arch(name), **kwargs)
    model.eval()
    return model, [str(w.message) for w in caught]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_both_frameworks_build_the_same_resampled_model(name, small_files):
    from mlp_zoo.jittor_support.runtime import jt

    for size in SMALL[name][1]:
        tm, tw = _create("torch", name, small_files[name], size)
        jm, jw = _create("jittor", name, small_files[name], size)
        assert any("resampled" in w and "PI-resize" in w for w in tw), tw
        assert tw == jw
        ts, js = tm.state_dict(), jm.state_dict()
        for key, value in js.items():  # element for element: the resampling is numpy, shared
            assert np.array_equal(ts[key].numpy(), value.numpy()), key
        x = np.random.RandomState(1).standard_normal((2, 3, *size)).astype(np.float32)
        with torch.no_grad():
            a = tm(torch.from_numpy(x)).numpy()
        with jt.no_grad():
            b = jm(jt.array(x)).numpy()
        assert np.abs(a - b).max() <= REL_TOL * np.abs(a).max(), size


def test_warning_names_the_weights_and_the_method(small_files):
    _, caught = _create("torch", "mixer_s16", small_files["mixer_s16"], 96, resample="interp")
    (message,) = caught
    assert "mixer_s16 at 96x96" in message and "4x4 -> 6x6 tokens" in message and "interpolation" in message
    assert "blocks.*.mlp_tokens.fc1.weight (2)" in message and "blocks.*.mlp_tokens.fc2.bias (2)" in message
    _, caught = _create("torch", "smlpnet_t", small_files["smlpnet_t"], (64, 96))
    (message,) = caught
    assert "16x16 -> 16x24" in message and "mix_w.weight (4)" in message and "mix_h" not in message


def test_convmlp_has_nothing_to_resample(tmp_path):
    model = models_pytorch.create_model("convmlp_s", depths=(1, 1, 1), num_classes=10)
    torch.save(model.state_dict(), tmp_path / "c.pth")
    with pytest.warns(UserWarning, match="convmlp_s has no grid-sized weights .* nothing resampled"):
        again = models_pytorch.create_model("convmlp_s", pretrained=tmp_path / "c.pth", img_size=96,
                                            depths=(1, 1, 1))
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value)


@pytest.mark.parametrize("name,size,message", [
    ("mixer_s16", 100, "mixer_s16 at 100x100: the patch 16 does not divide the input size"),
    ("mixer_s16", 8, "mixer_s16 at 8x8: a token grid smaller than 1x1"),
    ("mixer_s16", (0, 64), "mixer_s16 at 0x64: a token grid smaller than 1x1"),
    ("smlpnet_t", (64, 80), "smlpnet_t at 64x80: the total stride 32 does not divide the input size"),
    ("smlpnet_t", 16, "smlpnet_t at 16x16: a token grid smaller than 1x1"),
    ("vip_s7", 448, "vip_s7 at 448x448: ViP's permute MLPs fold each stage's grid into its channels, so the grids "
                    "32x32, 16x16 can only shrink to sides dividing them (sizes 14, 28, 56, 112, 224)"),
    ("vip_s7", 168, "vip_s7 at 168x168: ViP's permute MLPs fold"),
    ("vip_s7", (112, 224), "vip_s7 at 112x224: ViP's permute MLPs use one segment_dim for H and W"),
    ("vip_s7", 7, "vip_s7 at 7x7: a token grid smaller than 1x1"),
])
def test_bad_sizes_are_refused_naming_model_and_size(name, size, message, small_files):
    with pytest.raises(CheckpointError) as e:
        models_pytorch.create_model(name, pretrained=small_files[name], img_size=size, **_arch(name))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_resample_none_refuses_a_new_grid_and_loads_the_own_one(small_files):
    with pytest.raises(CheckpointError, match="mixer_s16 at 96x96: the weights are for other token grids .*"
                                              "resample='none'"):
        models_pytorch.create_model("mixer_s16", pretrained=small_files["mixer_s16"], img_size=96,
                                    resample="none", **_arch("mixer_s16"))
    # ViP's weights keep their shapes at another grid: 'none' must refuse, not load them unchanged
    with pytest.raises(CheckpointError, match="vip_s7 at 56x56: the weights are for other token grids"):
        models_pytorch.create_model("vip_s7", pretrained=small_files["vip_s7"], img_size=56, resample="none",
                                    **_arch("vip_s7"))
    for bad, message in ((dict(resample="cubic"), "mixer_s16: resample must be one of pi, interp, none"),
                         (dict(resample_kernel="area"), "mixer_s16: resample_kernel must be one of bilinear")):
        with pytest.raises(CheckpointError, match=message):
            models_pytorch.create_model("mixer_s16", pretrained=small_files["mixer_s16"], img_size=96, **bad,
                                        **_arch("mixer_s16"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the file's own size: nothing to resample, nothing to say
        models_pytorch.create_model("mixer_s16", pretrained=small_files["mixer_s16"], img_size=64,
                                    resample="none", **_arch("mixer_s16"))


@pytest.fixture(scope="module")
def variant_files(tmp_path_factory):
    """Registered variants at 224 (the converter builds the registered architectures), random weights."""
    root = tmp_path_factory.mktemp("variants")
    return {name: save_torch(root / f"{name}.pth", random_state(name)) for name in ("mixer_s32", "vip_s7")}


def test_convert_writes_the_resampled_file(variant_files, tmp_path):
    from weights_convert import read_checkpoint

    dst = tmp_path / "m.pkl"
    r = run_convert("torch2jittor", variant_files["mixer_s32"], dst, "--img-size", "96,128")
    assert r.returncode == 0, r.stderr
    assert "resample: mixer_s32 at 96x128: resampled 24 tensors, 7x7 -> 3x4 tokens" in r.stdout
    # a non-square Mixer grid: the token count alone does not say it, so the tool says what to build with
    assert "img_size=(96, 128)" in r.stdout.split("note:")[1]
    written = read_checkpoint(dst).state
    expected = resample_state("mixer_s32", read_checkpoint(variant_files["mixer_s32"]).state, (96, 128))[0]
    assert written.keys() == expected.keys()
    for key, value in expected.items():
        assert np.array_equal(written[key], value), key
    assert written["blocks.0.mlp_tokens.fc1.weight"].shape == (256, 12)
    # ViP: the shapes do not say the grid either
    r = run_convert("torch2jittor", variant_files["vip_s7"], tmp_path / "v.pkl", "--img-size", "112")
    assert r.returncode == 0, r.stderr
    assert "segment_dims=(16, 8)" in r.stdout.split("note:")[1]


@pytest.mark.parametrize("size,message", [
    ("100", "mixer_s32 at 100x100: the patch 32 does not divide the input size"),
    ("16", "mixer_s32 at 16x16: a token grid smaller than 1x1"),
    ("256", "vip_s7 at 256x256: the total stride 14 does not divide the input size"),
    ("448", "vip_s7 at 448x448: ViP's permute MLPs fold each stage's grid into its channels"),
])
def test_convert_refuses_bad_sizes_and_writes_nothing(variant_files, tmp_path, size, message):
    dst = tmp_path / "m.pkl"
    r = run_convert("torch2jittor", variant_files[message.split()[0]], dst, "--img-size", size)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and message in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_finetune_at_a_new_size_from_a_pretrained_file(tmp_path):
    from mlp_zoo.tools import finetune

    torch.manual_seed(0)
    torch.save(models_pytorch.create_model("mixer_s32", img_size=64, num_classes=10).state_dict(),
               tmp_path / "s32.pth")
    with pytest.warns(UserWarning, match="mixer_s32 at 96x96: resampled 24 tensors, 2x2 -> 3x3 tokens"):
        result = finetune.main(["--model", "mixer_s32", "--pretrained", str(tmp_path / "s32.pth"),
                                "--img-size", "96", "--steps", "2", "--out", str(tmp_path / "out")])
    run = result["runs"]["torch"]
    assert len(run["losses"]) == 2 and np.isfinite(run["losses"]).all()
    state = torch.load(run["checkpoint"], weights_only=True)["state_dict"]  # fine-tunes carry their cfg
    assert state["blocks.0.mlp_tokens.fc1.weight"].shape == (256, 9)
    # at 224 too (the models' default): a file of another size must still be resampled, not built at its own
    assert finetune.model_kwargs("mixer_s32", 224, 10, 0.0)["img_size"] == 224
