"""The GPU check's summary, from pytest's JUnit report and compare.py's records (no GPU needed to check it)."""
from __future__ import annotations

from mlp_zoo.tools.gpu_check import cuda_outcomes, summary_table

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_equivalence" name="test_logits_match[cuda-mixer_s32]"/>
<testcase classname="tests.test_training" name="test_train_step_matches[cuda-mixer_s32]">
  <failure message="gradient of head.weight off by 3e-3">...</failure></testcase>
<testcase classname="tests.test_equivalence" name="test_logits_match[cuda-vip_s7]"/>
<testcase classname="tests.test_layers" name="test_layer_norm[cuda]"/>
</testsuite></testsuites>"""


def test_outcomes_are_grouped_by_variant(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    outcomes = cuda_outcomes(junit, ["mixer_s32", "vip_s7", "vip_s14"])
    assert outcomes["vip_s7"] == ["passed"] and outcomes[""] == ["passed"] and "vip_s14" not in outcomes
    assert outcomes["mixer_s32"][0] == "passed"
    assert outcomes["mixer_s32"][1].startswith("failure: test_train_step_matches[cuda-mixer_s32]: gradient")


def test_summary_gives_each_variant_its_tests_diff_and_latencies():
    records = [{"model": "vip_s7", "framework": "torch", "max_abs_diff": 2e-6, "max_abs_logit": 4.0,
                "latency_ms": 10.0, "vs_torch": 1.0, "first_call_s": 0.5},
               {"model": "vip_s7", "framework": "jittor", "max_abs_diff": 2e-6, "max_abs_logit": 4.0,
                "latency_ms": 12.5, "vs_torch": 1.25, "first_call_s": 30.0}]
    table = summary_table(["vip_s7", "mixer_s32"], {"vip_s7": ["passed", "passed"],
                                                    "mixer_s32": ["passed", "failure: x"]}, records)
    rows = table.splitlines()
    assert rows[2] == "| vip_s7 | 2/2 | 2.00e-06 | 5.0e-07 | 10.00 | 12.50 | 1.25 | 30.0 |"
    assert rows[3] == "| mixer_s32 | 1/2 | - | - | - | - | - | - |"
