"""tools/compare.py: MACs counted from the models match the published figures, and a tiny run writes
consistent records, CSV and a plot."""
from __future__ import annotations

import csv
import json
import os

import pytest

import models_pytorch
from conftest import REL_TOL
from mlp_zoo.model_specs import variant
from mlp_zoo.tools import compare
from mlp_zoo.tools.macs import jittor_macs, torch_macs

WITH_OFFICIAL_MACS = [n for n in models_pytorch.list_models() if variant(n).macs is not None]


@pytest.mark.parametrize("name", WITH_OFFICIAL_MACS)
def test_counted_macs_are_official_in_both_frameworks(name: str):
    counted = torch_macs(name)
    assert jittor_macs(name) == counted
    assert round(counted / 1e9, 2) == variant(name).macs


def test_macs_at_another_input_size_pass_img_size_to_the_model():
    # 64 px: a 2x2 token grid, so the token MLP's products shrink with the grid (compare.py --img-size 64)
    counted = torch_macs("mixer_s32", (64, 64), img_size=64)
    assert jittor_macs("mixer_s32", (64, 64), img_size=64) == counted
    assert 0 < counted < torch_macs("mixer_s32") / 12


def test_default_models_are_one_per_family():
    families = {variant(n).family for n in models_pytorch.list_models()}
    defaults = compare.default_models()
    assert sorted(variant(n).family for n in defaults) == sorted(families)


def test_tiny_run_writes_consistent_records(tmp_path, capsys):
    name = min(WITH_OFFICIAL_MACS, key=lambda n: variant(n).macs)
    paths = {ext: tmp_path / f"out.{ext}" for ext in ("json", "csv", "png")}
    assert compare.main(["--models", name, "--batch", "1", "--runs", "2", "--warmup", "0",
                         "--json", str(paths["json"]), "--csv", str(paths["csv"]),
                         "--plot", str(paths["png"])]) == 0

    records = json.loads(paths["json"].read_text())
    assert [(r["model"], r["framework"]) for r in records] == [(name, "torch"), (name, "jittor")]
    for r in records:
        assert r["device"] == "cpu" and r["batch"] == 1
        assert r["params"] == variant(name).params
        assert round(r["macs"], 2) == variant(name).macs
        assert r["latency_ms"] >= r["latency_min_ms"] > 0
        assert r["images_per_s"] == pytest.approx(1e3 / r["latency_ms"])
        assert r["gflops"] == pytest.approx(2 * r["macs"] * 1e3 / r["latency_ms"])
        assert r["sgemm_gflops"] > 0 and r["first_call_s"] > 0
        assert r["others_cores"] is None or 0 <= r["others_cores"] <= os.cpu_count()
        assert r["max_abs_logit"] > 0.1  # a dead network would agree trivially
        assert r["max_abs_diff"] <= REL_TOL * r["max_abs_logit"]
    assert records[0]["vs_torch"] == 1.0
    assert records[1]["vs_torch"] == pytest.approx(records[1]["latency_ms"] / records[0]["latency_ms"])

    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["framework"], int(r["params"])) for r in rows] == \
        [(r["model"], r["framework"], r["params"]) for r in records]
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    table = capsys.readouterr().out
    assert f"| {name} | torch | {variant(name).params / 1e6:.3f} |" in table
    assert f"| {name} | jittor |" in table


def test_train_bench_runs_a_step_in_both_frameworks(tmp_path, capsys):
    name = min(WITH_OFFICIAL_MACS, key=lambda n: variant(n).macs)
    path = tmp_path / "train.json"
    assert compare.main(["--models", name, "--batch", "2", "--runs", "1", "--warmup", "0", "--bench", "train",
                         "--json", str(path)]) == 0
    records = json.loads(path.read_text())
    assert [(r["framework"], r["bench"]) for r in records] == [("torch", "train"), ("jittor", "train")]
    for r in records:
        assert r["gflops"] == pytest.approx(6 * r["macs"] * 2e3 / r["latency_ms"])
        assert r["max_abs_logit"] > 1  # the first step's cross-entropy over 1000 classes
        assert r["max_abs_diff"] <= REL_TOL * r["max_abs_logit"]
    assert "train step (ms, batch 2)" in capsys.readouterr().out
