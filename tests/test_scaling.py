"""How cost grows with the image (tools/compare.py --sizes): the token mixing's MACs per block, counted from the
models in both frameworks, against the closed forms; each family's build for a size; the fitted exponents.

Closed forms, per image and block, for a (H, W) token grid of C channels (N = HW):
- sMLPNet's token mixing: the axial products mix every (row, channel) with a W x W matrix and every (column,
  channel) with an H x H one: HW^2C + H^2WC = HWC(H + W), the paper's O(N sqrt N) term. The 1x1 fuse maps the
  3C-channel concat [x, W-mix, H-mix] to C channels at each of the HW positions: 3HWC^2. The depthwise 3x3 conv:
  9HWC. The paper's formula counts only the first; the block (and the published FLOPs) pays all three.
- Mixer's token MLP: Linear(N, D_S) and Linear(D_S, N) applied to each of the C channels: 2 N D_S C, with D_S =
  C / 2 in every official configuration; it is O(N^2) only where D_S grows with N (D_S = N: 2 N^2 C).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import models_jittor
import models_pytorch
from mlp_zoo.jittor_support.runtime import jt
from mlp_zoo.model_specs import variant
from mlp_zoo.tools import compare
from mlp_zoo.tools.macs import jittor_module_macs, torch_macs, torch_module_macs
from mlp_zoo.tools.scaling import growth_exponent, sized_build


def smlp_closed_forms(h: int, w: int, c: int) -> dict[str, int]:
    axial = h * w * c * (h + w)
    return {"axial": axial, "fuse": 3 * h * w * c * c, "depthwise": 9 * h * w * c}


def smlp_counts(model_pt, model_jt, stage: int, grid: tuple[int, int], c: int) -> dict[str, dict[str, int]]:
    """MACs of stage ``stage``'s first block's token mixing and of its parts, per framework: the two axial
    products, the depthwise conv, and the whole token mixing (axial, fuse and depthwise)."""
    counts = {}
    for fw, model, zeros in (("torch", model_pt, lambda *s: torch.empty(*s, device="meta")),
                             ("jittor", model_jt, lambda *s: jt.zeros(s))):
        mix = model.stages[stage].blocks[0].token_mix
        x = zeros(1, *grid, c)  # channels-last, as the blocks keep their activations
        count = torch_module_macs if fw == "torch" else jittor_module_macs
        counts[fw] = {"axial": count(mix.mix_w, x) + count(mix.mix_h, x), "depthwise": count(mix.dw_conv, x),
                      "token_mix": count(mix, x)}
    return counts


@pytest.mark.parametrize("img_size", [224, (192, 256)])
def test_smlpnet_token_mixing_macs_per_block_are_the_closed_forms(img_size):
    size = (img_size, img_size) if isinstance(img_size, int) else img_size
    with torch.device("meta"):
        model_pt = models_pytorch.create_model("smlpnet_t", img_size=img_size)
    model_jt = models_jittor.create_model("smlpnet_t", img_size=img_size)
    for stage in range(4):
        grid, c = (size[0] // 4 // 2 ** stage, size[1] // 4 // 2 ** stage), 80 * 2 ** stage
        closed = smlp_closed_forms(*grid, c)
        counts = smlp_counts(model_pt, model_jt, stage, grid, c)
        assert counts["jittor"] == counts["torch"], (stage, counts)
        counted = counts["torch"]
        assert counted["axial"] == closed["axial"]  # the paper's HWC(H+W)
        assert counted["depthwise"] == closed["depthwise"]
        # with the fuse and the depthwise conv: what the block pays beyond the paper's formula
        assert counted["token_mix"] == closed["axial"] + closed["fuse"] + closed["depthwise"]
        assert counted["token_mix"] - counted["axial"] == 3 * grid[0] * grid[1] * c * c + 9 * grid[0] * grid[1] * c
    if size == (224, 224):  # stage 1 of sMLPNet-T: 56x56 tokens of 80 channels
        assert smlp_closed_forms(56, 56, 80)["axial"] == 56 * 56 * 80 * 112 == 28_098_560


@pytest.mark.parametrize("name,img_size", [("mixer_s16", 224), ("mixer_s32", 320)])
def test_mixer_token_mlp_macs_per_block_are_the_closed_form(name, img_size):
    config = variant(name).config
    n, c, hidden = (img_size // config["patch_size"]) ** 2, config["embed_dim"], config["tokens_dim"]
    with torch.device("meta"):
        model_pt = models_pytorch.create_model(name, img_size=img_size)
    model_jt = models_jittor.create_model(name, img_size=img_size)
    # the token MLP's forward takes the tokens as (B, N, C): its products multiply the weights from the left
    counted = torch_module_macs(model_pt.blocks[0].mlp_tokens, torch.empty(1, n, c, device="meta"))
    assert jittor_module_macs(model_jt.blocks[0].mlp_tokens, jt.zeros((1, n, c))) == counted
    assert counted == 2 * n * hidden * c
    # and the whole model grows by that per block, plus the per-token work, between two sizes
    assert hidden == c // 2


def test_sized_build_per_family():
    assert sized_build("smlpnet_t", 320) == ({"img_size": 320}, 80 * 80)
    assert sized_build("smlpnet_t", 224) == ({}, 56 * 56)
    assert sized_build("mixer_s16", 448) == ({"img_size": 448}, 28 * 28)
    assert sized_build("convmlp_s", 320) == ({}, 80 * 80)  # as it is: convolutions and channel MLPs only
    assert sized_build("convmlp_s", 225) == ({}, 57 * 57)  # stride-2 conv and pool round up
    assert sized_build("vip_s7", 336) == ({"segment_dims": (48, 24)}, 48 * 48)
    assert sized_build("vip_s7", 224) == ({}, 32 * 32)
    for name, size, why in [("smlpnet_t", 240, "multiples of 32"), ("mixer_s16", 232, "multiples of its patch"),
                            ("vip_s7", 280, "divide the stage widths")]:  # 280: grid 40 does not divide 192
        with pytest.raises(ValueError, match=why):
            sized_build(name, size)
    # the builds take the sizes they are given for
    for name, size in [("vip_s7", 336), ("convmlp_s", 160)]:
        kwargs, _ = sized_build(name, size)
        assert torch_macs(name, (size, size), **kwargs) > 0


def test_growth_exponent_is_the_log_log_slope():
    n = [196, 400, 784, 1600]
    assert growth_exponent(n, [3 * x ** 1.5 for x in n]) == pytest.approx(1.5)
    assert growth_exponent(n, [x + 0.0 for x in n]) == pytest.approx(1.0)
    assert growth_exponent([196, 196], [1.0, 2.0]) is None


def test_sizes_run_fits_exponents_and_plots(tmp_path, capsys):
    # Mixer-S/32 at 2x2 and 4x4 tokens; PyTorch only (Jittor's first call at each new size compiles its
    # kernels for minutes on a cold cache; its path through compare.py is the one test_compare.py runs)
    paths = {ext: tmp_path / f"out.{ext}" for ext in ("json", "png")}
    assert compare.main(["--models", "mixer_s32", "--sizes", "64", "128", "--frameworks", "torch",
                         "--batch", "1", "--runs", "1", "--warmup", "0", "--json", str(paths["json"]),
                         "--plot", str(paths["png"])]) == 0
    out = capsys.readouterr().out
    records = json.loads(paths["json"].read_text())
    assert [(r["framework"], r["img_size"], r["tokens"]) for r in records] == [("torch", 64, 4), ("torch", 128, 16)]
    for r in records:
        assert r["peak_mem_mb"] is not None and r["peak_mem_mb"] >= 0
        assert r["macs"] * 1e9 == torch_macs("mixer_s32", (r["img_size"],) * 2, img_size=r["img_size"])
    macs = [r["macs"] for r in records if r["framework"] == "torch"]
    slope = np.log(macs[1] / macs[0]) / np.log(16 / 4)
    # at Mixer's fixed token width every product grows linearly in N (the token MLP's too): only the head does not
    assert 0.95 < slope < 1.0
    assert f"| mixer_s32 | torch | 64 128 | 4 16 | {slope:.2f} |" in out
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sizes_a_model_cannot_take_are_skipped_and_none_is_an_error(capsys):
    assert compare.main(["--models", "smlpnet_t", "--sizes", "100", "--runs", "1"]) == 2
    assert "smlpnet_t takes none of the sizes 100: smlpnet_t cannot take 100 px" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        compare.main(["--sizes", "64", "--img-size", "64"])
    assert e.value.code == 2


def test_torch_compile_column_against_eager(monkeypatch, capsys, tmp_path):
    # Dynamo's eager backend stands in for inductor (whose code generation takes minutes here): the column's
    # plumbing, interleaving and difference against eager PyTorch
    monkeypatch.setattr(compare, "compiled", lambda model: torch.compile(model, backend="eager", fullgraph=True))
    path = tmp_path / "compiled.json"
    assert compare.main(["--models", "mixer_s32", "--img-size", "64", "--frameworks", "torch", "--torch-compile",
                         "--batch", "2", "--runs", "1", "--warmup", "0", "--json", str(path)]) == 0
    records = json.loads(path.read_text())
    assert [r["framework"] for r in records] == ["torch", "torch_compiled"]
    eager, compiled = records
    assert compiled["macs"] == eager["macs"] and compiled["params"] == eager["params"]
    assert compiled["max_abs_diff"] <= 1e-5 * compiled["max_abs_logit"] and compiled["max_abs_logit"] > 0.1
    assert compiled["vs_torch"] == pytest.approx(compiled["latency_ms"] / eager["latency_ms"])
    assert eager["max_abs_diff"] is None  # no Jittor to compare with
    assert "| mixer_s32 | torch_compiled |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        compare.main(["--frameworks", "jittor", "--torch-compile"])
