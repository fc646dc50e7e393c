#!/usr/bin/env python
"""The main job end to end: a PyTorch sMLPNet-T checkpoint -> `mlp-zoo convert` -> Jittor, outputs compared."""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODEL, BATCH, RUNS = "smlpnet_t", 8, 3


def timed(fn, runs: int) -> tuple[object, float, float]:
    """(output, first-call seconds, median seconds of the following runs)."""
    start = time.perf_counter()
    out = fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return out, first, float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    import torch

    import models_pytorch

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for the two checkpoints (default %(default)s)")
    out = p.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    src, dst = out / f"{MODEL}_torch.pth", out / f"{MODEL}_jittor.pkl"

    torch.manual_seed(0)
    tmodel = models_pytorch.create_model(MODEL).eval()
    with torch.no_grad():  # trained-looking BatchNorm statistics, so that loading them matters
        for key, value in tmodel.state_dict().items():
            if key.endswith("running_mean"):
                value.normal_(0.0, 0.5)
            elif key.endswith("running_var"):
                value.uniform_(0.5, 2.0)
    torch.save({"model": tmodel.state_dict()}, src)
    print(f"saved PyTorch {MODEL} checkpoint: {src}")

    cmd = [sys.executable, "-m", "mlp_zoo", "convert", "torch2jittor", str(src), str(dst), "--force"]
    print("$ mlp-zoo convert torch2jittor", src, dst, "--force")
    if subprocess.run(cmd).returncode != 0:
        return 1

    import models_jittor
    from mlp_zoo.jittor_support.compile_progress import reporting
    from mlp_zoo.jittor_support.runtime import jt

    x = np.random.RandomState(0).standard_normal((BATCH, 3, 224, 224)).astype(np.float32)
    start = time.perf_counter()
    tref = models_pytorch.create_model(MODEL, pretrained=src).eval()
    t_load = time.perf_counter() - start
    start = time.perf_counter()
    jmodel = models_jittor.create_model(MODEL, pretrained=dst)
    jmodel.eval()
    j_load = time.perf_counter() - start

    with torch.no_grad():
        a, t_first, t_run = timed(lambda: tref(torch.from_numpy(x)).numpy(), RUNS)
    print(f"running {MODEL} in both frameworks (Jittor's first call compiles its kernels once: ~1 minute) ...",
          flush=True)
    with jt.no_grad(), reporting("Jittor compiling kernels"):
        b, j_first, j_run = timed(lambda: jmodel(jt.array(x)).numpy(), RUNS)
    diff, scale = float(np.abs(a - b).max()), float(np.abs(a).max())

    print(f"\n{MODEL}, batch {BATCH} at 224x224, CPU, eval mode; latency = median of {RUNS} runs after the first\n")
    print("| framework | load checkpoint | first call | latency | images/s | max abs diff vs PyTorch |")
    print("|---|---|---|---|---|---|")
    print(f"| PyTorch {torch.__version__} | {t_load:.2f} s | {t_first:.2f} s | {t_run:.3f} s | "
          f"{BATCH / t_run:.1f} | - |")
    print(f"| Jittor {jt.__version__} | {j_load:.2f} s | {j_first:.2f} s (JIT compile) | {j_run:.3f} s | "
          f"{BATCH / j_run:.1f} | {diff:.2e} ({diff / scale:.1e} of max abs logit {scale:.2f}) |")
    agree = diff <= 1e-4 * scale
    print(f"\nthe frameworks {'agree' if agree else 'DISAGREE'} (tolerance 1e-4 x max |logit|)")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
