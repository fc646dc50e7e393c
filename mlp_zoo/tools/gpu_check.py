#!/usr/bin/env python
"""Every CUDA check of the zoo on a machine with an NVIDIA GPU, summed up in one table.

  python -m mlp_zoo.tools.gpu_check [--models NAME ...] [--batch N] [--out PATH]

(``make test-cuda`` runs it through tools/gpu_check.sh, which first installs what it needs offline.)

1. The CUDA cases of the test suite (``pytest -k cuda``): eval and train equivalence of every variant and the
   rest; the table gives each variant's passed/total.
2. ``tools/compare.py --device cuda`` on every variant: the max abs diff of the two frameworks' logits (TF32 off in
   both), latency per framework.
3. ``mlp-zoo crosscheck --device cuda`` on sMLPNet-T, eval and ``--train``: the first module (and parameter
   gradient) where Jittor on CUDA parts from PyTorch on CUDA beyond the float32 noise floor, or that they agree.
4. Fast math: Jittor builds CUDA kernels with ``--use_fast_math`` unless our nvcc wrapper drops it (the default).
   The layers it affects (exact and tanh GELU, LayerNorm, a whole model) are compared with PyTorch on CUDA built
   both ways, each in its own Jittor cache.

Prints the tables (Markdown) on stdout, writes them to ``--out`` and exits 1 if any CUDA test failed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path.cwd()  # `make test-cuda` runs it in the clone, beside tests/ and benchmarks/

PROBE_MODEL = "mixer_s32"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_cuda_tests(models: list[str], junit: Path) -> dict[str, list[str]]:
    """Runs the CUDA cases of the test suite; their outcomes grouped by variant (see ``cuda_outcomes``)."""
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-k", "cuda", f"--junitxml={junit}", "tests"],
                   cwd=ROOT, check=False)
    return cuda_outcomes(junit, models)


def cuda_outcomes(junit: Path, models: list[str]) -> dict[str, list[str]]:
    """Outcome ('passed', 'failure: ...', 'error: ...', 'skipped: ...') of each test case in a JUnit report,
    grouped by the variant among its parameters ('' = none)."""
    outcomes: dict[str, list[str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        params = re.search(r"\[(.*)\]", case.get("name", ""))
        name = next((m for m in models if params and m in params.group(1).split("-")), "")
        bad = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        outcomes.setdefault(name, []).append(
            "passed" if bad is None else f"{bad.tag}: {case.get('name')}: {(bad.get('message') or '')[:200]}")
    return outcomes


def run_compare(models: list[str], batch: int, out: Path) -> list[dict]:
    cmd = [sys.executable, "-m", "mlp_zoo.tools.compare", "--device", "cuda", "--batch", str(batch),
           "--runs", "5", "--json", str(out), "--models", *models]
    if subprocess.run(cmd, cwd=ROOT, check=False).returncode != 0 or not out.exists():
        return []
    return json.loads(out.read_text())


CROSSCHECK_MODEL = "smlpnet_t"


def run_crosscheck(folder: Path) -> list[tuple[str, int, str]]:
    """``mlp-zoo crosscheck --device cuda`` in eval and in train mode: (mode, exit status, its summary lines)."""
    out = []
    for mode, extra in (("eval", []), ("train", ["--train"])):
        cmd = [sys.executable, "-m", "mlp_zoo.tools.crosscheck", "--model", CROSSCHECK_MODEL, "--device", "cuda",
               "--batch", "2", "--json", str(folder / f"crosscheck_{mode}.json"), *extra]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        said = [line for line in (r.stdout + r.stderr).splitlines()
                if line.startswith(("outputs:", "gradients:", "weights:", "mlp-zoo crosscheck: error"))]
        out.append((mode, r.returncode, "; ".join(said) or f"exit {r.returncode}"))
    return out


def probe_layers() -> dict[str, float]:
    """Max abs diff (relative to the reference's max abs) of Jittor's CUDA layers against PyTorch's."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from mlp_zoo.jittor_support.runtime import jt
    from models_jittor.layers import ErfGELU, LayerNorm, TanhGELU
    from mlp_zoo.tools.pairs import cross_check, jittor_device, random_weights

    rng = np.random.RandomState(0)
    x = (rng.standard_normal((256, 4096)) * 3).astype(np.float32)
    uncentred = (rng.standard_normal((256, 768)) * 0.5 + 10).astype(np.float32)
    ln = LayerNorm(768)
    cases = {
        "exact GELU": (ErfGELU(), x, lambda t: F.gelu(t)),
        "tanh GELU": (TanhGELU(), x, lambda t: F.gelu(t, approximate="tanh")),
        "LayerNorm (mean 10)": (ln, uncentred, lambda t: F.layer_norm(t, (768,), eps=1e-5)),
    }
    out = {}
    with jittor_device("cuda"):
        for label, (layer, data, reference) in cases.items():
            ref = reference(torch.from_numpy(data).cuda()).cpu().numpy()
            got = layer(jt.array(data)).numpy()
            out[label] = float(np.abs(got - ref).max() / np.abs(ref).max())
    check = cross_check(PROBE_MODEL, random_weights(PROBE_MODEL), batch=2, device="cuda")
    out[f"{PROBE_MODEL} logits"] = check.relative
    return out


def fast_math_table() -> str:
    rows = {}
    for fast in ("0", "1"):
        env = {**os.environ, "MLPZOO_CUDA_FAST_MATH": fast}
        r = subprocess.run([sys.executable, "-m", "mlp_zoo.tools.gpu_check", "--probe-layers"], cwd=ROOT, env=env,
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            rows[fast] = {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
        else:
            rows[fast] = json.loads(r.stdout.strip().splitlines()[-1])
    labels = sorted({k for row in rows.values() for k in row})
    lines = ["| Jittor CUDA vs PyTorch CUDA (max abs diff / max abs value) | without fast math (default) | "
             "with --use_fast_math |", "|---|---|---|"]
    for label in labels:
        cells = [f"{rows[f][label]:.2e}" if isinstance(rows[f].get(label), float) else str(rows[f].get(label, "-"))
                 for f in ("0", "1")]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def summary_table(models: list[str], outcomes: dict[str, list[str]], records: list[dict]) -> str:
    by = {(r["model"], r["framework"]): r for r in records}
    lines = ["| model | CUDA tests passed | max abs diff | / max abs logit | torch (ms) | jittor (ms) | "
             "jittor / torch | jittor first call (s) |", "|---|---|---|---|---|---|---|---|"]
    for m in models:
        done = outcomes.get(m, [])
        t, j = by.get((m, "torch")), by.get((m, "jittor"))
        cells = [m, f"{sum(o == 'passed' for o in done)}/{len(done)}"]
        if t and j:
            cells += [f"{t['max_abs_diff']:.2e}", f"{t['max_abs_diff'] / t['max_abs_logit']:.1e}",
                      f"{t['latency_ms']:.2f}", f"{j['latency_ms']:.2f}", f"{j['vs_torch']:.2f}",
                      f"{j['first_call_s']:.1f}"]
        else:
            cells += ["-"] * 6
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment() -> str:
    import torch

    from mlp_zoo.jittor_support.runtime import jt

    nvcc = os.environ.get("nvcc_path", "")
    return (f"{torch.cuda.get_device_name()}; torch {torch.__version__} (CUDA {torch.version.cuda}), "
            f"jittor {jt.__version__} (has_cuda={jt.has_cuda}, nvcc {nvcc})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mlp_zoo.tools.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", help="variants for the compare step (default: all)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "gpu_check.md")
    p.add_argument("--probe-layers", action="store_true", help=argparse.SUPPRESS)  # one fast-math setting
    args = p.parse_args(argv)
    import models_jittor  # noqa: F401  (prepares Jittor, and its CUDA toolkit, before torch)
    import models_pytorch
    import torch

    if args.probe_layers:
        print(json.dumps(probe_layers()))
        return 0
    if not torch.cuda.is_available():
        log("gpu_check: PyTorch sees no CUDA GPU here")
        return 2
    models = args.models or models_pytorch.list_models()
    env = environment()
    log(env)
    with tempfile.TemporaryDirectory() as tmp:
        log("== 1/4 CUDA test cases")
        outcomes = run_cuda_tests(models_pytorch.list_models(), Path(tmp) / "junit.xml")
        log("== 2/4 compare.py --device cuda")
        records = run_compare(models, args.batch, Path(tmp) / "compare.json")
        log("== 3/4 crosscheck --device cuda")
        crosschecked = run_crosscheck(Path(tmp))
    log("== 4/4 fast math")
    fast = fast_math_table()
    failed = [o for group in outcomes.values() for o in group if o.startswith(("failure", "error"))]
    total = sum(len(group) for group in outcomes.values())
    text = (f"{env}; batch {args.batch}, 224x224, fp32 (TF32 off)\n\n{summary_table(models, outcomes, records)}\n\n"
            f"CUDA test cases: {total - len(failed)}/{total} passed\n"
            + "".join(f"- {f}\n" for f in failed)
            + f"\nmlp-zoo crosscheck --model {CROSSCHECK_MODEL} --device cuda (batch 2, 224x224):\n"
            + "".join(f"- {mode}: {said}\n" for mode, _, said in crosschecked) + f"\n{fast}\n")
    print(text)
    args.out.write_text(text)
    return 1 if failed or not records or any(rc != 0 for _, rc, _ in crosschecked) else 0


if __name__ == "__main__":
    sys.exit(main())
