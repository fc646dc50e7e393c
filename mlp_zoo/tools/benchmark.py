#!/usr/bin/env python
"""Where the time of one forward pass goes, in PyTorch (its profiler, per aten op) and in Jittor (its
profiler, per compiled kernel), grouped into matmul / conv / elementwise / reduction / copy; ``torch_compiled``
profiles PyTorch compiled by ``torch.compile`` (inductor; its fused C++ kernels are named after the ops they fuse).

  python tools/benchmark.py [MODEL] [--batch N] [--frameworks torch torch_compiled jittor] [--top K]

Prints a Markdown table per framework: the groups' milliseconds and shares, then the heaviest ops or kernels.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


from mlp_zoo.tools.compare import COMPILED, compiled
from mlp_zoo.tools.pairs import build_jittor, build_torch, random_input, random_weights

# first matching pattern names the group; Jittor's fused kernels are named after the ops they contain
GROUPS = [
    ("matmul", re.compile(r"mm|matmul|linear|addmm|bmm|baddbmm")),
    ("conv", re.compile(r"conv")),
    ("copy / transpose", re.compile(r"copy|clone|cat|transpose|setitem|getitem|contiguous")),
    ("reduction (norms, means)", re.compile(r"reduce|norm|mean|sum")),
]


def group_of(name: str) -> str:
    for group, pattern in GROUPS:
        if pattern.search(name):
            return group
    return "elementwise"


def torch_profile(model, x: np.ndarray) -> tuple[float, dict[str, float]]:
    """(wall seconds of the profiled call, self CPU milliseconds per aten op)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    xt = torch.from_numpy(x)
    with torch.inference_mode():
        for _ in range(2):
            model(xt)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            model(xt)
            wall = time.perf_counter() - start
    return wall, {e.key: e.self_cpu_time_total / 1e3 for e in prof.key_averages() if e.self_cpu_time_total > 0}


def jittor_profile(model, x: np.ndarray) -> tuple[float, dict[str, float]]:
    """(wall seconds of the profiled call, milliseconds per kernel, named by the ops it fuses)."""
    from mlp_zoo.jittor_support.runtime import jt

    xj = jt.array(x)
    with jt.no_grad():
        for _ in range(2):
            model(xj).sync()
        with jt.profile_scope(warmup=0, rerun=0) as report:
            start = time.perf_counter()
            model(xj).sync()
            wall = time.perf_counter() - start
    head, rows = report[0], report[1:]
    col = head.index("TotalTime")  # nanoseconds
    kernels: dict[str, float] = defaultdict(float)
    for row in rows:
        ops = re.findall(r"opkey\d+:(\w+)", row[0]) or [row[0].split("«")[0]]
        kernels["+".join(dict.fromkeys(ops))] += float(row[col]) / 1e6
    return wall, dict(kernels)


def report(framework: str, wall: float, per_op: dict[str, float], top: int) -> str:
    total = sum(per_op.values())
    groups: dict[str, float] = defaultdict(float)
    for name, ms in per_op.items():
        groups[group_of(name)] += ms
    lines = [f"### {framework}: {wall * 1e3:.0f} ms wall, {total:.0f} ms in ops", "",
             "| group | ms | share |", "|---|---|---|"]
    lines += [f"| {g} | {ms:.1f} | {100 * ms / total:.0f}% |" for g, ms in sorted(groups.items(), key=lambda i: -i[1])]
    unit = "op" if framework == "torch" else "kernel (fused ops)" if framework == "jittor" else "op or fused kernel"
    lines += ["", f"| heaviest {unit} | ms | share |", "|---|---|---|"]
    for name, ms in sorted(per_op.items(), key=lambda i: -i[1])[:top]:
        lines.append(f"| `{name[:90]}` | {ms:.1f} | {100 * ms / total:.0f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default="smlpnet_t")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frameworks", nargs="+", choices=("torch", COMPILED, "jittor"), default=["torch", "jittor"])
    p.add_argument("--top", type=int, default=8, help="heaviest ops or kernels listed (default 8)")
    args = p.parse_args(argv)
    import models_jittor  # noqa: F401  (prepares Jittor before anything else imports it)

    state = random_weights(args.model)
    x = random_input(args.batch, {})
    print(f"## {args.model}, batch {args.batch}, one forward pass (CPU)\n")
    for fw in args.frameworks:
        if fw == "torch":
            wall, per_op = torch_profile(build_torch(args.model, state), x)
        elif fw == COMPILED:
            import torch._inductor.config

            torch._inductor.config.cpp.enable_kernel_profile = True  # the fused kernels in the profile, by name
            wall, per_op = torch_profile(compiled(build_torch(args.model, state)), x)  # compiles in the warm-up
        else:
            wall, per_op = jittor_profile(build_jittor(args.model, state), x)
        print(report(fw, wall, per_op, args.top) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
