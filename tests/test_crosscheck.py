"""`mlp-zoo crosscheck`: a difference planted in one place of each family is named there, what runs after it is
`input differed`, and an untouched pair agrees everywhere; --train names the first parameter whose gradient parts.

The models are each family's smallest shapes (a block or two per stage, a few channels, 28-32 px), batch 2."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import models_jittor
from conftest import random_state
from helpers import save_torch
from mlp_zoo.tools.crosscheck import main
from weights_convert import read_checkpoint, write_atomic

# the smallest build of each family: (variant, options as `--set` takes them)
TINY = {
    "smlpnet": ("smlpnet_t", dict(embed_dim=8, depths=(1, 1, 1, 1), img_size=32)),
    "mixer": ("mixer_s16", dict(depth=2, embed_dim=16, tokens_dim=8, channels_dim=32, img_size=32)),
    "vip": ("vip_s7", dict(depths=(1, 1), embed_dims=(16, 32), segment_dims=(4, 2))),
    "convmlp": ("convmlp_s", dict(depths=(1, 1, 1), dims=(8, 16, 32), mlp_ratios=(1, 1, 1), tokenizer_dim=8,
                                  n_conv_blocks=1)),
}


def crosscheck(tmp_path: Path, family: str, *extra: str) -> tuple[int, dict]:
    name, options = TINY[family]
    out = tmp_path / f"{family}.json"
    argv = ["--model", name, "--batch", "2", "--json", str(out), "--all", *extra]
    argv += [f"--set={k}={v!r}" for k, v in options.items() if k != "img_size"]
    if "img_size" in options:
        argv += ["--img-size", str(options["img_size"])]
    rc = main(argv)
    return rc, json.loads(out.read_text()) if out.exists() else {}


def files(tmp_path: Path, family: str, plant: Callable[[dict], None]) -> tuple[Path, Path]:
    """A PyTorch file of random weights, converted to Jittor's .pkl, and ``plant`` applied to the converted state."""
    name, options = TINY[family]
    src = save_torch(tmp_path / "w.pth", random_state(name, **options))
    state = dict(read_checkpoint(src).state)
    plant(state)
    dst = tmp_path / "w.pkl"
    write_atomic(dst, state)
    return src, dst


def assert_named_first(report: dict, module: str, also: str | None = None) -> None:
    """Rows before ``module`` agree, ``module`` differs, every row after it differs only through its input (or is a
    container around it), but ``also``, planted too."""
    rows = report["modules"]
    at = next(i for i, r in enumerate(rows) if r["verdict"] != "agrees")
    assert rows[at]["name"] == module and rows[at]["verdict"] == "differs", rows[at]
    assert all(r["verdict"] == "agrees" for r in rows[:at])
    after = rows[at + 1:]
    assert after, "the planted module was the last to run"
    for r in after:
        if r["name"] == also:
            assert r["verdict"] == "differs"
            continue
        inside = any(m.startswith(r["name"] + ".") or r["name"] == "" for m in (module, also or module))
        assert r["verdict"] == ("differs inside" if inside else "input differed") or (
            r["verdict"] == "agrees" and not inside), r
    assert sum(r["verdict"] == "input differed" for r in after) >= 1


def test_untouched_pairs_agree_everywhere(tmp_path):
    for family in TINY:
        rc, report = crosscheck(tmp_path, family)
        assert rc == 0, family
        assert report["first_divergent"] is None and not report["weights"]
        assert report["modules"] and all(r["verdict"] == "agrees" for r in report["modules"]), family
        assert report["modules"][-1]["name"] == ""  # the whole model, its logits, last
        assert max(r["relative"] for r in report["modules"]) < 1e-4


@pytest.mark.parametrize("family, plant, key", [
    ("smlpnet", "perturb", "stages.2.blocks.0.token_mix.mix_h.weight"),
    ("convmlp", "statistic", "conv_stages.conv_blocks.0.1.running_var"),
    ("mixer", "swap", "blocks.0.mlp_channels.fc1.weight"),
])
def test_a_weights_difference_is_named_without_running_and_where_it_shows(tmp_path, family, plant, key):
    def change(state: dict[str, np.ndarray]) -> None:
        if plant == "perturb":
            state[key] = state[key] + 1e-2
        elif plant == "statistic":
            state[key] = state[key] * 3
        else:  # the same-shaped weight of the next block
            other = key.replace("blocks.0.", "blocks.1.")
            state[key], state[other] = state[other], state[key]

    src, dst = files(tmp_path, family, change)
    rc, report = crosscheck(tmp_path, family, "--torch", str(src), "--jittor", str(dst))
    assert rc == 1 and report["first_divergent"] == key and report["modules"] == []  # not run
    assert report["weights"][0]["key"] == key
    assert len(report["weights"]) == (2 if plant == "swap" else 1)
    rc, report = crosscheck(tmp_path, family, "--torch", str(src), "--jittor", str(dst), "--run-anyway")
    assert rc == 1
    # the module holding the key, or where a fused Jittor kernel computes it, the nearest container both run
    def run_by_both(key: str) -> str:
        module = key.rsplit(".", 1)[0]
        while module not in {r["name"] for r in report["modules"]}:
            module = module.rpartition(".")[0]
        return module

    assert_named_first(report, run_by_both(key),
                       run_by_both(key.replace("blocks.0.", "blocks.1.")) if plant == "swap" else None)


def test_a_module_computing_differently_is_named(tmp_path, monkeypatch):
    planted = "stages.0.blocks.0.permute_mlp.mix_h"  # ViP's first height-mixing Linear

    def create_model(*args: Any, **kwargs: Any) -> Any:
        model = create(*args, **kwargs)
        module = dict(model.named_modules())[planted]
        run = module.execute
        module.execute = lambda x: run(x) * 1.001
        return model

    create = models_jittor.create_model
    monkeypatch.setattr(models_jittor, "create_model", create_model)
    rc, report = crosscheck(tmp_path, "vip")
    assert rc == 1 and report["first_divergent"] == planted and not report["weights"]
    assert_named_first(report, planted)


def test_train_names_the_first_parameter_whose_gradient_parts(tmp_path, monkeypatch):
    rc, report = crosscheck(tmp_path, "smlpnet", "--train")
    assert rc == 0 and report["train"] and report["first_divergent"] is None
    grads = report["gradients"]
    assert len(grads) > 20 and all(r["verdict"] == "agrees" for r in grads)
    assert grads[-1]["name"] == "stem.weight"  # backward order: the first layer's gradient comes last

    planted = "stages.1.downsample"  # its forward as before, its gradient 1.5 times as large

    def create_model(*args: Any, **kwargs: Any) -> Any:
        model = create(*args, **kwargs)
        module = dict(model.named_modules())[planted]
        run = module.execute

        def execute(x: Any) -> Any:
            y = run(x)
            return y + 0.5 * (y - y.detach())
        module.execute = execute
        return model

    create = models_jittor.create_model
    monkeypatch.setattr(models_jittor, "create_model", create_model)
    rc, report = crosscheck(tmp_path, "smlpnet", "--train")
    assert rc == 1 and all(r["verdict"] == "agrees" for r in report["modules"])  # the forward is the same
    grads = report["gradients"]
    at = next(i for i, r in enumerate(grads) if r["verdict"] != "agrees")
    assert grads[at]["name"].startswith(planted + ".") and report["first_divergent"] == grads[at]["name"]
    assert all(r["verdict"] == "agrees" for r in grads[:at]) and at > 0
    assert all(r["verdict"] == "differs" for r in grads[at:] if r["name"].startswith(planted + "."))


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    mixer = save_torch(tmp_path / "mixer.pth", random_state(*TINY["mixer"][:1], **TINY["mixer"][1]))
    cases = [
        (["--model", "nope"], "unknown model 'nope'"),
        (["--model", "smlpnet_t", "--torch", str(tmp_path / "missing.pth")], "missing.pth: no such file"),
        (["--model", "smlpnet_t", "--jittor", str(mixer)], "mixer.pth"),
        (["--model", "smlpnet_t", "--json", str(tmp_path / "no" / "out.json")], "no folder"),
    ]
    for argv, said in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert said in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "no").exists()
    with pytest.raises(SystemExit) as stop:  # argparse's own usage error
        main(["--model", "smlpnet_t", "--set", "depths"])
    assert stop.value.code == 2 and "expected KEY=VALUE" in capsys.readouterr().err
