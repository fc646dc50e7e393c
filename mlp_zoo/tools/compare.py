#!/usr/bin/env python
"""Compare the zoo's variants across PyTorch and Jittor: size, work, speed and agreement.

  python tools/compare.py [--models NAME ...] [--frameworks torch jittor] [--device cpu|cuda] [--batch N]
                          [--img-size S | --sizes S ...] [--torch-compile] [--runs N] [--warmup N]
                          [--bench latency|train] [--json PATH] [--csv PATH] [--plot PATH]
                          [--data DIR [--pretrained NAME=WEIGHTS ...]]

For each variant: parameters and MACs per image, both counted from the model in each framework (convolutions
and matrix products only, as the published figures count them); latency per batch as the median over
``--runs`` timed calls after ``--warmup`` calls, the frameworks interleaved call by call (alternating which
goes first) so that machine noise hits both alike; images/s; achieved GFLOP/s (2 x MACs x batch / latency)
against an fp32 matmul (sgemm, 2048^3 in PyTorch) timed in turn with the models; the first call's time (for
Jittor it includes JIT-compiling op shapes not in its cache yet); the max abs difference between the two
frameworks' logits for the same weights and input; the published top-1, and with ``--data`` the top-1 measured
on that folder by tools/validate.py (each release's own preprocessing) beside it; the tokens at the first stage;
the peak memory the second call takes from emptied caches (on the CPU the growth of the process's peak RSS over its
RSS before the call; on CUDA PyTorch's allocator peak over what it held before, and for Jittor, whose allocator
keeps what it takes, the growth of the device memory in use; see ``PeakMemory``).

``--sizes 224 320 448 ...`` measures every variant at each size it can take (Mixer and sMLPNet built for the size,
ConvMLP as it is, ViP at the grid the size gives; see ``scaling.py``) and adds the growth exponents of MACs and of
latency in the tokens N (least squares on log-log); ``--plot`` then draws both against N on log-log axes.

``--torch-compile`` adds PyTorch compiled by ``torch.compile`` (inductor, ``fullgraph=True``) as the framework
``torch_compiled``, interleaved with the others; its first call holds the compile time, its max abs diff is
against eager PyTorch's output (the first step's loss with ``--bench train``, where the model is compiled and the
optimizer step stays eager).

``--bench train`` times a training step instead of inference: forward in train mode (drop path 0, so that the
frameworks compute the same), cross-entropy on fixed labels, backward and an SGD step (momentum 0.9, weight decay
1e-4; ``torch.optim.SGD`` and ``jittor_support.optim.SGD``, which has PyTorch's semantics); the latency is the step's,
GFLOP/s count 3 x MACs (forward and the two backward products), and the difference is between the first step's
losses.

Without --models: the smallest variant (fewest parameters) of every family, batch 8, on the CPU.
Prints a Markdown table on stdout and progress on stderr.
"""
from __future__ import annotations

import argparse
import csv
import ctypes
import gc
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np


from mlp_zoo.model_specs import variant
from mlp_zoo.release_files import is_release_name
from mlp_zoo.tools.pairs import build_jittor, build_torch, jittor_device, random_input, random_weights
from mlp_zoo.tools.macs import jittor_macs, torch_macs
from mlp_zoo.tools.scaling import exponents, exponents_table, sized_build, write_growth_plot

FRAMEWORKS = ("torch", "jittor")
COMPILED = "torch_compiled"  # with --torch-compile: PyTorch through torch.compile (inductor)
BENCHES = ("latency", "train")
SGEMM_N = 2048
TRAIN_SGD = dict(lr=1e-3, momentum=0.9, weight_decay=1e-4)


@dataclass
class Record:
    model: str
    family: str
    framework: str
    bench: str  # 'latency' (inference) or 'train' (forward, backward and SGD step)
    device: str
    params: int  # counted from the model
    macs: float  # G per image, counted from the model
    official_macs: float | None
    top1: float | None
    batch: int
    img_size: int
    tokens: int  # at the first stage
    latency_ms: float  # median per batch (per training step with --bench train)
    latency_min_ms: float
    images_per_s: float
    gflops: float  # achieved: 2 x MACs x batch / latency (x 3 for a training step)
    sgemm_gflops: float
    pct_sgemm: float
    first_call_s: float  # Jittor's includes JIT compiling new op shapes, torch_compiled's torch.compile
    peak_mem_mb: float | None  # what the second call added to the peak RSS (CPU) or allocator (CUDA), see PeakMemory
    vs_torch: float | None  # latency / PyTorch's latency
    max_abs_diff: float | None  # between PyTorch's and Jittor's logits (the first step's losses with --bench
    # train); for torch_compiled between its output and eager PyTorch's
    max_abs_logit: float  # (the loss with --bench train)
    load_avg: float  # 1-minute load average when the model's timing ended (this process included)
    others_cores: float | None  # cores busy with other processes during the model's timing, on average
    measured_top1: float | None = None  # tools/validate.py on --data, with the release's preprocessing


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds the whole machine has been busy, CPU seconds this process and its children have used), or
    None without /proc/stat: their difference over a while is the CPU time other processes took."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait, in clock ticks
    return busy / os.sysconf("SC_CLK_TCK"), sum(os.times()[:4])


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


class PeakMemory:
    """The peak memory one call adds, in bytes (None where it cannot be read), from emptied caches: memory freed
    earlier (by the previous calls or variants) is first given back, Jittor's allocator cache and the C heap's free
    pages, so that the call's working set is counted, not reused unseen. CPU: the process's peak RSS (VmHWM, which
    writing 5 to /proc/self/clear_refs resets to the current RSS) over its RSS before the call. CUDA: PyTorch's
    allocator peak over what it held before; for Jittor the growth of the device memory in use (its allocator
    keeps what it takes, so that this growth is the allocator's peak over the call)."""

    def __init__(self, framework: str, device: str) -> None:
        self.framework, self.device = framework, device
        self._before: int | None = None

    def start(self) -> None:
        gc.collect()
        if self.framework == "jittor":
            from mlp_zoo.jittor_support.runtime import jt

            jt.gc()  # frees the blocks its allocators cache
        try:
            if self.device == "cpu":
                ctypes.CDLL(None).malloc_trim(0)  # glibc: the heap's free pages back to the system
                Path("/proc/self/clear_refs").write_text("5")
                self._before = _status_kb("VmRSS") * 1024
            elif self.framework == "jittor":
                from mlp_zoo.jittor_support.runtime import jt

                self._before = jt.get_mem_info().total_cuda_used
            else:
                import torch

                torch.cuda.reset_peak_memory_stats()
                self._before = torch.cuda.memory_allocated()
        except (OSError, AttributeError):  # no /proc or no glibc
            self._before = None

    def stop(self) -> int | None:
        if self._before is None:
            return None
        if self.device == "cpu":
            peak = _status_kb("VmHWM") * 1024
        elif self.framework == "jittor":
            from mlp_zoo.jittor_support.runtime import jt

            peak = jt.get_mem_info().total_cuda_used
        else:
            import torch

            peak = torch.cuda.max_memory_allocated()
        return max(0, peak - self._before)


def sgemm_caller(device: str, n: int = SGEMM_N) -> Callable[[], None]:
    """An fp32 ``n x n @ n x n`` matmul in PyTorch: the machine's reference throughput."""
    import torch

    a, b = (torch.randn(n, n, device=device) for _ in range(2))

    def call() -> None:
        torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()

    return call


def compiled(model: Any) -> Any:
    """``model`` through ``torch.compile`` with inductor, in one graph (a graph break raises)."""
    import torch
    import torch._inductor.config

    # inductor compiles in a pool of worker processes by default: on a few cores it gains little, and here
    # each worker would be a fork of a process holding Jittor's runtime
    torch._inductor.config.compile_threads = 1
    return torch.compile(model, backend="inductor", fullgraph=True)


def torch_caller(model: Any, x: np.ndarray, device: str) -> Callable[[], np.ndarray]:
    import torch

    xt = torch.from_numpy(x).to(device)

    def call() -> np.ndarray:
        with torch.inference_mode():
            return model(xt).cpu().numpy()  # waits for the device, like Jittor's fetch

    return call


def jittor_caller(model: Any, x: np.ndarray) -> Callable[[], np.ndarray]:
    from mlp_zoo.jittor_support.runtime import jt

    xj = jt.array(x)

    def call() -> np.ndarray:
        with jt.no_grad():
            return model(xj).numpy()  # Jittor is lazy: fetching the logits runs the graph

    return call


def train_labels(batch: int) -> np.ndarray:
    return np.arange(batch, dtype=np.int32) % 1000


def torch_train_caller(model: Any, x: np.ndarray, device: str) -> Callable[[], np.ndarray]:
    import torch
    import torch.nn.functional as F

    model.train()
    xt, labels = torch.from_numpy(x).to(device), torch.from_numpy(train_labels(len(x))).long().to(device)
    optimizer = torch.optim.SGD(model.parameters(), **TRAIN_SGD)

    def call() -> np.ndarray:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xt), labels)
        loss.backward()
        optimizer.step()
        return loss.detach().cpu().numpy()  # waits for the device

    return call


def jittor_train_caller(model: Any, x: np.ndarray) -> Callable[[], np.ndarray]:
    from mlp_zoo.jittor_support.runtime import jt
    from mlp_zoo.jittor_support.optim import SGD

    model.train()
    xj, labels = jt.array(x), jt.array(train_labels(len(x)))
    optimizer = SGD([p for p in model.parameters() if not p.is_stop_grad()], **TRAIN_SGD)

    def call() -> np.ndarray:
        optimizer.zero_grad()
        loss = jt.nn.cross_entropy_loss(model(xj), labels)
        optimizer.backward(loss)
        optimizer.step()  # runs the step's graph
        return loss.numpy()

    return call


def prepare(framework: str, name: str, state: dict[str, np.ndarray], x: np.ndarray, device: str,
            kwargs: dict[str, Any], bench: str = "latency") -> tuple[Callable[[], np.ndarray], int]:
    """(a call running the model on ``x`` — inference returning the logits, or a training step returning the
    loss — and the model's parameter count)."""
    if framework in ("torch", COMPILED):
        model = build_torch(name, state, device, **kwargs)
        params = sum(p.numel() for p in model.parameters())
        if framework == COMPILED:
            model = compiled(model)  # compiles on the first call, in the framework's turn
        call = torch_caller(model, x, device) if bench == "latency" else torch_train_caller(model, x, device)
        return call, params
    model = build_jittor(name, state, **kwargs)
    params = sum(int(np.prod(v.shape)) for k, v in model.state_dict().items() if "running_" not in k)
    return (jittor_caller(model, x) if bench == "latency" else jittor_train_caller(model, x)), params


def timed(call: Callable[[], Any], memory: PeakMemory | None = None) -> tuple[Any, float, int | None]:
    """(the call's output, its seconds, the peak memory it added in bytes, measured outside the timing)."""
    if memory:
        memory.start()
    start = time.perf_counter()
    out = call()
    seconds = time.perf_counter() - start
    return out, seconds, memory.stop() if memory else None


def time_interleaved(calls: dict[str, Callable[[], Any]], runs: int, warmup: int,
                     memory: dict[str, PeakMemory] | None = None
                     ) -> tuple[dict[str, Any], dict[str, float], dict[str, list[float]], dict[str, int | None]]:
    """(first outputs, first-call seconds, timed seconds, the peak memory a call added) per call: the calls take
    turns one by one, and which goes first alternates, so that load changes and cache effects hit all alike.
    ``memory`` probes the second call of those it names (the first compiles; with --warmup 0 the second is timed,
    and pays for the caches the probe empties)."""
    memory = memory or {}
    outputs, first, times, peaks = {}, {}, {fw: [] for fw in calls}, {fw: None for fw in calls}
    for fw, call in calls.items():
        outputs[fw], first[fw], _ = timed(call)
        log(f"  {fw} first call {first[fw]:.2f}s")
    order = list(calls)
    for i in range(warmup + runs):
        for fw in order if i % 2 == 0 else order[::-1]:
            _, seconds, peak = timed(calls[fw], memory.get(fw) if i == 0 else None)
            if i == 0:
                peaks[fw] = peak
            if i >= warmup:
                times[fw].append(seconds)
        if i >= warmup:
            log(f"  run {i - warmup + 1}/{runs}: " + ", ".join(f"{fw} {t[-1] * 1e3:.0f} ms" for fw, t in times.items()))
    return outputs, first, times, peaks


def compare_model(name: str, frameworks: list[str], device: str, batch: int, img_size: int, runs: int,
                  warmup: int, seed: int = 0, bench: str = "latency") -> list[Record]:
    """Count, time (interleaved) and cross-check ``name`` on ``img_size`` x ``img_size`` input (built for that
    size as ``scaling.sized_build`` says); one record per framework (``torch``, ``torch_compiled``, ``jittor``)."""
    info = variant(name)
    kwargs, tokens = sized_build(name, img_size)
    state = random_weights(name, seed, **kwargs)
    if bench == "train":
        kwargs["drop_path_rate"] = 0.0
    counters = {"torch": torch_macs, COMPILED: torch_macs, "jittor": jittor_macs}
    macs = {fw: counters[fw](name, (img_size, img_size), **kwargs) for fw in frameworks if fw != COMPILED}
    log("  MACs per image: " + ", ".join(f"{fw} {m / 1e9:.3f}G" for fw, m in macs.items())
        + (f" (official {info.macs}G)" if info.macs else ""))
    if COMPILED in frameworks:
        macs[COMPILED] = macs["torch"]  # the same products, fused or not

    x = random_input(batch, {"img_size": img_size}, seed)
    with jittor_device(device):
        prepared = {fw: prepare(fw, name, state, x, device, kwargs, bench) for fw in frameworks}
        params = {fw: p[1] for fw, p in prepared.items()}
        calls = {fw: p[0] for fw, p in prepared.items()}
        cpu_before, start = cpu_seconds(), time.perf_counter()
        # the reference matmul takes its turn with the models, so that it sees the same machine load
        outputs, first, times, peaks = time_interleaved({**calls, "sgemm": sgemm_caller(device)}, runs, warmup,
                                                        {fw: PeakMemory(fw, device) for fw in frameworks})
        cpu_after, wall = cpu_seconds(), time.perf_counter() - start
    del prepared, calls  # frees the models before the next variant
    sgemm = 2 * SGEMM_N ** 3 / float(np.median(times.pop("sgemm"))) / 1e9

    def max_diff(a: str, b: str) -> float | None:
        return float(np.abs(outputs[a] - outputs[b]).max()) if a in outputs and b in outputs else None

    diffs = {"torch": max_diff("torch", "jittor"), "jittor": max_diff("torch", "jittor"),
             COMPILED: max_diff(COMPILED, "torch")}
    diff = diffs["torch"]
    if diff is not None and diff > 1e-4 * float(np.abs(outputs["torch"]).max()):  # the tests' tolerance: name where
        log(f"  the logits part by {diff:.2e}: mlp-zoo crosscheck --model {name} --img-size {img_size} --device {device}"
            f"{' --train' if bench == 'train' else ''} names the first module that computes differently")
    load = os.getloadavg()[0]
    others = (None if cpu_before is None or cpu_after is None
              else max(0.0, (cpu_after[0] - cpu_before[0]) - (cpu_after[1] - cpu_before[1])) / wall)
    medians = {fw: float(np.median(times[fw])) for fw in frameworks}
    records = []
    for fw in frameworks:
        latency = medians[fw]
        gflops = 2 * (3 if bench == "train" else 1) * macs[fw] * batch / latency / 1e9
        records.append(Record(
            model=name, family=info.family, framework=fw, bench=bench, device=device, params=params[fw],
            # the published figures are for 224 px
            macs=macs[fw] / 1e9, official_macs=info.macs if img_size == 224 else None,
            top1=info.top1 if img_size == 224 else None, batch=batch, img_size=img_size,
            tokens=tokens, latency_ms=latency * 1e3, latency_min_ms=min(times[fw]) * 1e3,
            images_per_s=batch / latency, gflops=gflops, sgemm_gflops=sgemm, pct_sgemm=100 * gflops / sgemm,
            first_call_s=first[fw], peak_mem_mb=None if peaks[fw] is None else peaks[fw] / 2 ** 20,
            vs_torch=latency / medians["torch"] if "torch" in medians else None, max_abs_diff=diffs[fw],
            max_abs_logit=float(np.abs(outputs[fw]).max()), load_avg=load, others_cores=others))
    return records


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown_table(records: list[Record]) -> str:
    batch = records[0].batch if records else 0
    train = bool(records) and records[0].bench == "train"
    measured = any(r.measured_top1 is not None for r in records)
    head = ["model", "framework", "params (M)", "MACs (G)", "official MACs (G)", "top-1"] + \
        (["measured top-1"] if measured else []) + ["size", "tokens",
            f"{'train step' if train else 'latency'} (ms, batch {batch})", "img/s", "GFLOP/s", "% sgemm",
            "peak mem (MB)", "first call (s)", "vs torch", "loss diff" if train else "max abs diff"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        rows.append("| " + " | ".join([
            r.model, r.framework, f"{r.params / 1e6:.3f}", f"{r.macs:.2f}", _fmt(r.official_macs, ".2f"),
            _fmt(r.top1, ".1f")] + ([_fmt(r.measured_top1, ".2f")] if measured else []) + [
            str(r.img_size), str(r.tokens), f"{r.latency_ms:.1f}", f"{r.images_per_s:.1f}", f"{r.gflops:.1f}",
            f"{r.pct_sgemm:.0f}%", _fmt(r.peak_mem_mb, ".0f"), f"{r.first_call_s:.2f}", _fmt(r.vs_torch, ".2f"),
            _fmt(r.max_abs_diff, ".2e")]) + " |")
    return "\n".join(rows)


def write_csv(records: list[Record], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(records[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in records)


def write_plot(records: list[Record], path: Path) -> None:
    """Left: top-1 against MACs per image. Right: latency per batch, one bar per framework."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r.model for r in records))
    frameworks = list(dict.fromkeys(r.framework for r in records))
    first = {r.model: r for r in records}
    families = list(dict.fromkeys(first[m].family for m in models))
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for i, family in enumerate(families):
        points = [first[m] for m in models if first[m].family == family and first[m].top1 is not None]
        left.scatter([r.macs for r in points], [r.top1 for r in points], color=f"C{i}", label=family)
        for r in points:
            left.annotate(r.model, (r.macs, r.top1), textcoords="offset points", xytext=(4, 4), fontsize=8)
    left.set(xlabel="MACs per image (G, counted)", ylabel="published ImageNet top-1 (%)", title="Accuracy vs work")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    width = 0.8 / len(frameworks)
    latency = {(r.model, r.framework): r.latency_ms for r in records}
    for i, fw in enumerate(frameworks):
        xs = [j + (i - (len(frameworks) - 1) / 2) * width for j in range(len(models))]
        right.bar(xs, [latency[m, fw] for m in models], width, label=fw)
    right.set_xticks(range(len(models)), models, rotation=30, ha="right", fontsize=8)
    r0 = records[0]
    what = "training step" if r0.bench == "train" else "latency"
    right.set(ylabel=f"{what} per batch of {r0.batch} (ms, log scale)", yscale="log",
              title=f"{what.capitalize()} ({r0.device}, median)")
    right.legend()
    right.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def default_models() -> list[str]:
    """The smallest registered variant of each family."""
    import models_pytorch

    smallest: dict[str, str] = {}
    for name in models_pytorch.list_models():
        info = variant(name)
        if info.family not in smallest or info.params < variant(smallest[info.family]).params:
            smallest[info.family] = name
    return sorted(smallest.values(), key=lambda n: (variant(n).family, n))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", help="variants (default: the smallest of each family)")
    p.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS))
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--img-size", type=int, help="input size (default 224)")
    p.add_argument("--sizes", type=int, nargs="+", metavar="S",
                   help="measure every model at each of these sizes it can take, with the growth exponents of MACs "
                        "and latency in the tokens")
    p.add_argument("--torch-compile", action="store_true",
                   help="add PyTorch compiled by torch.compile (inductor) as the framework torch_compiled")
    p.add_argument("--runs", type=int, default=7, help="timed calls per framework (default 7)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls after the first (default 2)")
    p.add_argument("--bench", choices=BENCHES, default="latency",
                   help="latency: inference; train: forward, backward and SGD step (default latency)")
    p.add_argument("--json", type=Path, help="write the records as a JSON list")
    p.add_argument("--csv", type=Path, help="write the records as CSV")
    p.add_argument("--plot", type=Path, help="write a PNG: top-1 vs MACs and latency per framework (with --sizes: "
                                             "MACs and latency against tokens, log-log)")
    p.add_argument("--data", help="an ImageNet-style folder: adds a measured top-1 column (tools/validate.py, each "
                                  "release's preprocessing) beside the published one")
    p.add_argument("--pretrained", "--checkpoints", dest="checkpoints", nargs="+", default=[],
                   metavar="NAME=WEIGHTS",
                   help="the weights to measure each model with on --data: NAME=PATH, NAME=RELEASE, or a release "
                        "name alone (e.g. smlpnet_s.spach_in1k); default: the random weights timed here")
    p.add_argument("--limit", type=int, help="with --data: only the first N images")
    args = p.parse_args(argv)
    args.checkpoints = [f"{c.split('.', 1)[0]}={c}" if "=" not in c and is_release_name(c) else c
                        for c in args.checkpoints]
    bad = [c for c in args.checkpoints if "=" not in c]
    if bad:
        p.error(f"--pretrained takes NAME=PATH, NAME=RELEASE or a release name, not {bad[0]}")
    if args.runs < 1 or args.warmup < 0 or args.batch < 1:
        p.error("--runs and --batch must be >= 1, --warmup >= 0")
    if args.limit is not None and args.limit < 1:
        p.error(f"--limit {args.limit}: must be >= 1")
    if args.sizes and args.img_size:
        p.error("--img-size and --sizes: give one")
    if args.sizes and args.data:
        p.error("--data measures top-1 at one size: use --img-size, not --sizes")
    if args.torch_compile and "torch" not in args.frameworks:
        p.error("--torch-compile compares against eager PyTorch: keep torch in --frameworks")
    if any(s < 1 for s in [args.img_size or 224, *(args.sizes or [])]):
        p.error("image sizes must be positive")
    if args.img_size:  # one size asked for: every model must take it (--sizes skips what a model cannot take)
        from mlp_zoo.model_specs import VARIANTS
        from weights_convert.resample import check_input_size

        for name in [m for m in args.models or default_models() if m in VARIANTS]:  # unknown names: main says so
            try:
                check_input_size(name, args.img_size)
            except ValueError as e:
                p.error(f"--img-size {args.img_size}: {e}")
    args.sizes = list(dict.fromkeys(args.sizes or [args.img_size or 224]))
    args.img_size = args.sizes[0]
    return args


def measure_top1(name: str, frameworks: list[str], args: argparse.Namespace) -> dict[str, float]:
    """Top-1 of ``name`` on ``args.data`` per framework, as tools/validate.py measures it."""
    from mlp_zoo.tools import validate

    checkpoint = dict(c.split("=", 1) for c in args.checkpoints).get(name)
    argv = [args.data, "--model", name, "--framework", "both" if len(frameworks) == 2 else frameworks[0],
            "--batch-size", str(args.batch)]
    argv += ["--pretrained", checkpoint] if checkpoint else (["--img-size", str(args.img_size)]
                                                              if args.img_size != 224 else [])
    argv += ["--limit", str(args.limit)] if args.limit else []
    result = validate.validate(validate.parse_args(argv))
    log(f"  measured on {args.data}: " + ", ".join(f"{r['framework']} top-1 {r['top1']:.2f}%"
                                                    for r in result["results"]))
    return {r["framework"]: r["top1"] for r in result["results"]}


def machine_summary(device: str) -> str:
    import torch

    from mlp_zoo.jittor_support.runtime import jt

    where = torch.cuda.get_device_name() if device == "cuda" else f"{cpu_model()}, {os.cpu_count()} cores"
    return (f"{where}; torch {torch.__version__} ({torch.get_num_threads()} threads), jittor {jt.__version__}, "
            f"numpy {np.__version__}; load average {os.getloadavg()[0]:.2f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import models_jittor  # noqa: F401  (prepares Jittor before anything else imports it)
    import models_pytorch

    known = models_pytorch.list_models()
    models = args.models or default_models()
    unknown = [m for m in models if m not in known]
    if unknown:
        print(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    frameworks = [fw for fw in FRAMEWORKS if fw in args.frameworks]
    if args.torch_compile:
        frameworks.insert(1, COMPILED)
    runs, skipped = [], []
    for name in models:
        taken = []
        for size in args.sizes:
            try:
                sized_build(name, size)
                taken.append((name, size))
            except ValueError as e:
                skipped.append(str(e))
        if not taken:
            print(f"{name} takes none of the sizes {' '.join(map(str, args.sizes))}: {skipped[-1]}", file=sys.stderr)
            return 2
        runs += taken
    for note in skipped:
        log(f"skipped: {note}")
    summary = machine_summary(args.device)
    log(summary)
    records: list[Record] = []
    for i, (name, size) in enumerate(runs, 1):
        log(f"[{i}/{len(runs)}] {name} at {size} px")
        timed = compare_model(name, frameworks, args.device, args.batch, size, args.runs, args.warmup,
                              bench=args.bench)
        if args.data:
            measured = measure_top1(name, frameworks, args)
            for record in timed:
                record.measured_top1 = measured[record.framework]
        records += timed
    sgemm = np.median([r.sgemm_gflops for r in records])
    others = [r.others_cores for r in records if r.others_cores is not None]
    busy = f"; other processes kept {max(others):.2f} cores busy at most (average per model)" if others else ""
    print(f"{summary} (at start), {os.getloadavg()[0]:.2f} (at end){busy}; sgemm {SGEMM_N}^3 fp32 in torch, timed "
          f"in turn with the models: {sgemm:.1f} GFLOP/s (median over the models)\n\n{markdown_table(records)}")
    growth = exponents(records) if len(args.sizes) > 1 else []
    if growth:
        print(f"\nGrowth with the tokens N at the first stage (least squares on log-log)\n\n{exponents_table(growth)}")
    for note in skipped:
        print(f"\nskipped: {note}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in records], indent=1) + "\n")
    if args.csv:
        write_csv(records, args.csv)
    if args.plot and growth:
        write_growth_plot(records, growth, args.plot)
    elif args.plot:
        write_plot(records, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
