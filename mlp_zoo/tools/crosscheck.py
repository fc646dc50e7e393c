"""Where do PyTorch and Jittor part? A module-by-module divergence report for one pair of weights.

  mlp-zoo crosscheck --model NAME [--torch FILE] [--jittor FILE] [--img-size H[,W]] [--set KEY=VALUE ...]
                     [--batch N] [--seed S] [--device cpu|cuda] [--train] [--json OUT] [--rows N | --all]

FILE may be any format the loaders read (docs/converting.md); one of --torch/--jittor alone loads the same file in
both frameworks, neither gives both the same seeded random weights. First the two models' parameters and buffers
are compared key by key: a difference is reported as such, without running (--run-anyway runs the forward too).
Then one random batch goes through both; every module's output is recorded (PyTorch forward hooks, a wrapped
``execute`` in Jittor; the twins share module names, so calls pair by dotted name) and judged in execution order:

  agrees          within the float32 noise floor: how far PyTorch's own float32 result is from float64 (at most
                  TOLERANCE times that, plus a few float32 ulps of the output's scale);
  differs         the module computes differently: fed Jittor's own input, PyTorch's module still parts from
                  Jittor's beyond the module's floor (PyTorch's module in float64 against float32 on its input);
  input differed  it computes the same on the same input: its input already differed;
  differs inside  a container whose difference comes from a module inside it that differs.

--train runs one forward + backward in train mode (drop path 0) on the same input and target, then compares each
parameter's gradient against its floor (PyTorch float64 against float32), in backward order.

Exit status: 0 when the two agree, 1 when they differ, 2 on bad input.
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import sys
import tempfile
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

PROG = "mlp-zoo crosscheck"
TOLERANCE = 8.0  # a difference up to this many noise floors agrees: both frameworks round, in their own order
ULPS = 4 * np.finfo(np.float32).eps  # ... plus this much of the output's scale (an exact op has a floor of 0)
# a gradient also carries the loss's: Jittor's cross-entropy rounds its softmax differently from PyTorch's fused
# log-softmax, a few parts in 1e6 of every gradient (measured: 1.5e-6 of the classifier bias's on sMLPNet)
GRADIENT_ULPS = 64 * np.finfo(np.float32).eps
VERDICTS = ("agrees", "differs", "input differed", "differs inside")


@dataclass
class Row:
    """One module call (or, with --train, one parameter's gradient) compared across the frameworks."""
    name: str  # dotted name as in the state dict; '' is the whole model
    call: int  # which call of this module (0 unless it runs more than once)
    max_abs: float  # max abs difference between the frameworks' outputs
    relative: float  # max_abs / max abs of PyTorch's output
    floor: float  # PyTorch float32 against float64: the module run on its own input cast (gradients: whole run)
    accumulated_floor: float | None  # PyTorch float32 against a whole float64 run: the noise reaching this output
    same_input: float | None  # PyTorch's module fed Jittor's input, against Jittor's output
    verdict: str

    @property
    def label(self) -> str:
        name = self.name or "(model)"
        return f"{name} (call {self.call + 1})" if self.call else name


def tolerance(floor: float, scale: float) -> float:
    return TOLERANCE * floor + ULPS * scale


# ---------------------------------------------------------------- values of either framework as numpy arrays

def arrays(value: Any) -> list[np.ndarray]:
    """Every floating tensor (PyTorch or Jittor) in an output or argument, flattened, as numpy."""
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in arrays(v)]
    if isinstance(value, dict):
        return [a for v in value.values() for a in arrays(v)]
    if hasattr(value, "detach"):  # torch
        value = value.detach().cpu().numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # jittor Var
        value = value.numpy()
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return [value]
    return []


def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return float("inf")
    return max((float(np.abs(x.astype(np.float64) - y).max()) for x, y in zip(a, b) if x.size), default=0.0)


def scale(a: list[np.ndarray]) -> float:
    return max((float(np.abs(x).max()) for x in a if x.size), default=0.0)


def to_numpy_args(value: Any) -> Any:
    """Jittor arguments with every Var as numpy (kept for feeding PyTorch later)."""
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy_args(v) for v in value)
    if isinstance(value, dict):
        return {k: to_numpy_args(v) for k, v in value.items()}
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        return value.numpy()
    return value


def to_torch(value: Any, device: str, dtype: Any = None) -> Any:
    """numpy arrays (and PyTorch tensors) as PyTorch tensors on ``device``; floating ones cast to ``dtype``."""
    import torch

    if isinstance(value, (list, tuple)):
        return type(value)(to_torch(v, device, dtype) for v in value)
    if isinstance(value, dict):
        return {k: to_torch(v, device, dtype) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        value = value.detach().to(device)
        return value.to(dtype) if dtype is not None and value.is_floating_point() else value
    return value


# ---------------------------------------------------------------- the two models

@dataclass
class Options:
    name: str
    kwargs: dict[str, Any]
    batch: int
    seed: int
    device: str
    train: bool


def build_pair(opts: Options, torch_file: str | None, jittor_file: str | None) -> tuple[Any, Any]:
    """The PyTorch and the Jittor model: each from its file (one file alone: both from it), or both from the same
    seeded random weights."""
    import models_jittor
    import models_pytorch
    from mlp_zoo.tools.pairs import build_jittor, build_torch, random_weights

    if not torch_file and not jittor_file:
        state = random_weights(opts.name, opts.seed, **opts.kwargs)
        return build_torch(opts.name, state, opts.device, **opts.kwargs), build_jittor(opts.name, state, **opts.kwargs)
    tm = models_pytorch.create_model(opts.name, pretrained=torch_file or jittor_file, **opts.kwargs)
    jm = models_jittor.create_model(opts.name, pretrained=jittor_file or torch_file, **opts.kwargs)
    return tm.to(opts.device), jm


def weight_differences(tm: Any, jm: Any) -> list[tuple[str, str]]:
    """(key, what differs) for every parameter or buffer the two models do not hold identically, in state-dict
    order."""
    ts = {k: v.detach().cpu().numpy() for k, v in tm.state_dict().items()}
    js = {k: v.numpy() for k, v in jm.state_dict().items()}
    out = []
    for key, a in ts.items():
        if key not in js:
            if not key.endswith("num_batches_tracked"):  # Jittor's BatchNorm keeps no counter
                out.append((key, "only in the PyTorch model"))
            continue
        b = js[key]
        if a.shape != b.shape:
            out.append((key, f"shape {tuple(a.shape)} in PyTorch, {tuple(b.shape)} in Jittor"))
        elif a.dtype.kind == "f" and not np.array_equal(a, b):
            out.append((key, f"weights differ by {np.abs(a.astype(np.float64) - b).max():.1e}"))
    out += [(key, "only in the Jittor model") for key in js if key not in ts]
    return out


def record_jittor(jm: Any, x: np.ndarray, target: np.ndarray | None) -> tuple[dict, list[str], dict]:
    """Runs Jittor with every module's ``execute`` wrapped: {(name, call): (args, kwargs, outputs)} as numpy, the
    call order, and (with ``target``) each parameter's gradient of the cross-entropy loss."""
    from mlp_zoo.jittor_support.runtime import jt

    calls: dict[tuple[str, int], tuple[Any, Any, list[np.ndarray]]] = {}
    order: list[str] = []
    wrapped: list[tuple[Any, Any]] = []
    seen: set[int] = set()
    for name, module in jm.named_modules():
        if id(module) in seen:
            continue
        seen.add(id(module))

        def execute(*args: Any, _run: Callable = module.execute, _name: str = name, **kw: Any) -> Any:
            out = _run(*args, **kw)
            call = sum(n == _name for n in order)
            order.append(_name)
            calls[(_name, call)] = (to_numpy_args(args), to_numpy_args(kw), arrays(out))
            return out

        wrapped.append((module, module.__dict__.get("execute")))
        module.execute = execute  # an instance attribute shadows the class's execute; Module.__call__ calls it
    grads: dict[str, np.ndarray] = {}
    try:
        if target is None:
            jm.eval()
            with jt.no_grad():
                jm(jt.array(x))
        else:
            jm.train()
            loss = jt.nn.cross_entropy_loss(jm(jt.array(x)), jt.array(target))
            params = [(k, p) for k, p in jm.named_parameters() if not p.is_stop_grad()]
            for (key, _), g in zip(params, jt.grad(loss, [p for _, p in params])):
                grads[key] = g.numpy()
    finally:
        for module, own in wrapped:  # as it was (an instance may have had its own execute)
            if own is None:
                del module.__dict__["execute"]
            else:
                module.execute = own
    return calls, order, grads


class TorchRecorder:
    """Forward hooks on every module of a PyTorch model, calling ``on_call(name, call, module, args, kwargs,
    output, start)`` when a module returns (``start``: the index of the call's beginning among all calls)."""

    def __init__(self, model: Any, on_call: Callable) -> None:
        self.on_call, self.paused, self.started, self.counts = on_call, False, 0, {}
        self.handles = []
        self.stack: list[int] = []
        for name, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._pre))
            self.handles.append(module.register_forward_hook(self._hook(name), with_kwargs=True))

    def _pre(self, module: Any, args: Any) -> None:
        if not self.paused:
            self.stack.append(self.started)
            self.started += 1

    def _hook(self, name: str) -> Callable:
        def hook(module: Any, args: Any, kwargs: Any, output: Any) -> None:
            if self.paused:
                return
            call = self.counts.get(name, 0)
            self.counts[name] = call + 1
            start = self.stack.pop()
            self.paused = True  # re-running the module (or its float64 twin) must not record anything
            try:
                self.on_call(name, call, module, args, kwargs, output, start)
            finally:
                self.paused = False
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def run_torch(model: Any, x: Any, target: Any) -> Any:
    """The model's output; with ``target``: the cross-entropy loss's backward done."""
    import torch
    import torch.nn.functional as F

    if target is None:
        model.eval()
        with torch.no_grad():
            return model(x)
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(x)
    F.cross_entropy(out, target).backward()
    return out


def compare(opts: Options, tm: Any, jm: Any) -> tuple[list[Row], list[Row], list[str]]:
    """The module rows (execution order), with ``opts.train`` the gradient rows (backward order), and the modules
    only one framework runs (e.g. those a fused Jittor kernel computes inside its parent): not compared."""
    import torch

    from mlp_zoo.tools.pairs import random_input

    x = random_input(opts.batch, opts.kwargs, opts.seed, opts.name)
    num_classes = tm.num_classes
    target = np.random.RandomState(opts.seed + 1).randint(0, num_classes, opts.batch) if opts.train else None
    jcalls, jorder, jgrads = record_jittor(jm, x, target)

    # PyTorch in float64 from the start: the noise that float32 accumulates up to each module
    tm64 = copy.deepcopy(tm).double()
    exact: dict[tuple[str, int], list[np.ndarray]] = {}
    rec = TorchRecorder(tm64, lambda name, call, m, a, kw, out, start: exact.__setitem__((name, call), arrays(out)))
    t_target = None if target is None else torch.from_numpy(target).to(opts.device)
    try:
        run_torch(tm64, to_torch(x, opts.device, torch.float64), t_target)
    finally:
        rec.close()
    twins = dict(tm64.named_modules())
    grads64 = {k: p.grad.detach().cpu().numpy() for k, p in tm64.named_parameters() if p.grad is not None}

    rows: list[Row] = []
    spans: list[tuple[int, int]] = []  # (start, end) of each row's call, to find what ran inside a module
    forward_order: list[Any] = []  # modules in the order they returned, for the backward order of parameters
    unpaired: list[str] = []

    def on_call(name: str, call: int, module: Any, args: Any, kwargs: Any, output: Any, start: int) -> None:
        forward_order.append(module)
        ours = arrays(output)
        if (name, call) not in jcalls:
            unpaired.append(name)  # a call Jittor's twin does not make
            return
        jargs, jkw, theirs = jcalls.pop((name, call))
        ref_scale = scale(ours)
        with torch.no_grad():
            floor = max_diff(ours, arrays(twins[name](*to_torch(args, opts.device, torch.float64),
                                                      **to_torch(kwargs, opts.device, torch.float64))))
            same = max_diff(arrays(module(*to_torch(jargs, opts.device), **to_torch(jkw, opts.device))), theirs)
        accumulated = max_diff(ours, exact[(name, call)]) if (name, call) in exact else floor
        direct = max_diff(ours, theirs)
        if direct <= tolerance(max(floor, accumulated), ref_scale):
            verdict = "agrees"
        elif same <= tolerance(floor, ref_scale):
            verdict = "input differed"
        else:
            verdict = "differs"
        rows.append(Row(name, call, direct, direct / max(ref_scale, 1e-30), floor, accumulated, same, verdict))
        spans.append((start, rec32.started))

    rec32 = TorchRecorder(tm, on_call)
    try:
        run_torch(tm, to_torch(x, opts.device), t_target)
    finally:
        rec32.close()
    for i, row in enumerate(rows):  # a container whose difference is a module's inside it
        if row.verdict == "differs" and any(rows[j].verdict in ("differs", "differs inside")
                                            and spans[j][0] > spans[i][0] for j in range(i)):
            row.verdict = "differs inside"
    unpaired += [name for name, _ in jcalls]

    grad_rows: list[Row] = []
    if opts.train:
        names = {id(p): k for k, p in tm.named_parameters()}
        seen: list[str] = []
        # each parameter where its module first returned (one its parent uses without calling it: with the parent);
        # backward runs them reversed
        for module in forward_order:
            seen += [names[id(p)] for p in module.parameters() if names[id(p)] not in seen]
        params = dict(tm.named_parameters())
        for key in reversed(seen):
            p = params[key]
            if p.grad is None or key not in jgrads:
                continue
            ours = [p.grad.detach().cpu().numpy()]
            floor = max_diff(ours, [grads64[key]])
            direct = max_diff(ours, [jgrads[key]])
            ref_scale = scale(ours)
            verdict = "agrees" if direct <= TOLERANCE * floor + GRADIENT_ULPS * ref_scale else "differs"
            grad_rows.append(Row(key, 0, direct, direct / max(ref_scale, 1e-30), floor, None, None, verdict))
    return rows, grad_rows, sorted(set(unpaired))


# ---------------------------------------------------------------- the report

def first(rows: list[Row]) -> Row | None:
    return next((r for r in rows if r.verdict == "differs"), None)


def table(rows: list[Row], shown: list[int], gradients: bool = False) -> str:
    head = ["parameter (backward order)" if gradients else "module (execution order)", "max abs diff",
            "relative", "noise floor", "verdict"]
    body = [[rows[i].label, f"{rows[i].max_abs:.2e}", f"{rows[i].relative:.1e}",
             f"{max(rows[i].floor, rows[i].accumulated_floor or 0):.1e}", rows[i].verdict] for i in shown]
    widths = [max(len(r[c]) for r in body + [head]) for c in range(len(head))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    previous = None
    for i, cells in zip(shown, body):
        if previous is not None and i != previous + 1:
            lines.append("...")
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
        previous = i
    return "\n".join(lines)


def shown_rows(rows: list[Row], count: int, everything: bool) -> list[int]:
    """Every row, or the first one that differs with a few around it (the last row, the logits, always), or when
    all agree those nearest their tolerance."""
    if everything or len(rows) <= count:
        return list(range(len(rows)))
    culprit = first(rows)
    if culprit is not None:
        i = rows.index(culprit)
        picked = set(range(max(0, i - 2), min(len(rows), i - 2 + count - 1)))
    else:
        margin = [r.max_abs / max(tolerance(max(r.floor, r.accumulated_floor or 0), r.max_abs / max(r.relative, 1e-30)
                                            if r.relative else 0.0), 1e-30) for r in rows]
        picked = set(sorted(range(len(rows)), key=lambda j: -margin[j])[:count - 1])
    return sorted(picked | {len(rows) - 1})


def summary(rows: list[Row], what: str) -> str:
    culprit = first(rows)
    if culprit is None:
        worst = max((r.relative for r in rows), default=0.0)
        return f"{what}: agree to {worst:.1e} everywhere ({len(rows)} compared, each within its float32 noise floor)"
    same = "" if culprit.same_input is None else f"; on Jittor's own input {culprit.same_input:.1e}"
    return (f"{what}: first divergence: {culprit.label} (differs by {culprit.max_abs:.1e}, relative "
            f"{culprit.relative:.1e}{same} against a noise floor of {culprit.floor:.1e})")


def write_json(path: Path, payload: dict) -> None:
    """Whole or not at all: a temporary file beside ``path``, renamed."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# ---------------------------------------------------------------- the command

class BadInput(Exception):
    """An ordinary mistake in the options or files: one line, exit 2."""


def _size(text: str) -> int | tuple[int, int]:
    try:
        parts = [int(v) for v in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"expected H or H,W (positive integers), got {text!r}")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def _setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a plain word, e.g. gelu=tanh


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="variant name (mlp-zoo compare lists them)")
    p.add_argument("--torch", metavar="FILE", help="weights for the PyTorch model (any format the loaders read)")
    p.add_argument("--jittor", metavar="FILE", help="weights for the Jittor model (any format the loaders read)")
    p.add_argument("--img-size", type=_size, metavar="H[,W]", help="build both models for this input size")
    p.add_argument("--set", type=_setting, action="append", default=[], metavar="KEY=VALUE",
                   help="any other build option of the model, e.g. --set gelu=tanh (repeatable)")
    p.add_argument("--batch", type=int, default=2, help="images in the random batch (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the batch (and of random weights)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--train", action="store_true",
                   help="one forward + backward in train mode (drop path 0); compare every parameter's gradient")
    p.add_argument("--json", type=Path, metavar="OUT", help="write every row and first_divergent as JSON")
    p.add_argument("--rows", type=int, default=8, help="rows of the table around the first divergence")
    p.add_argument("--all", action="store_true", help="print every row")
    p.add_argument("--run-anyway", action="store_true", help="run the forward even when the weights differ")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    import models_jittor  # noqa: F401  (prepares Jittor before anything else imports it)
    import models_pytorch

    if args.model not in models_pytorch.list_models():
        raise BadInput(f"unknown model '{args.model}'; known: {', '.join(models_pytorch.list_models())}")
    if args.batch < 1 or args.rows < 1:
        raise BadInput("--batch and --rows must be at least 1")
    for option, path in (("--torch", args.torch), ("--jittor", args.jittor)):
        if path and not os.path.isfile(path):
            raise BadInput(f"{option} {path}: no such file")
    if args.json and not args.json.parent.is_dir():
        raise BadInput(f"--json {args.json}: no folder {args.json.parent}")
    import torch

    from mlp_zoo.tools.pairs import jittor_device

    if args.device == "cuda" and not torch.cuda.is_available():
        raise BadInput("--device cuda: PyTorch sees no CUDA GPU here")
    kwargs = dict(args.set)
    if args.img_size:
        kwargs["img_size"] = args.img_size
    if args.train:
        kwargs["drop_path_rate"] = 0.0
    opts = Options(args.model, kwargs, args.batch, args.seed, args.device, args.train)
    with jittor_device(args.device):
        tm, jm = build_pair(opts, args.torch, args.jittor)
        mismatch = weight_differences(tm, jm)
        rows: list[Row] = []
        grad_rows: list[Row] = []
        unpaired: list[str] = []
        if not mismatch or args.run_anyway:
            rows, grad_rows, unpaired = compare(opts, tm, jm)
    mode = "train mode, one forward + backward" if args.train else "eval mode"
    print(f"{args.model} ({', '.join(f'{k}={v}' for k, v in kwargs.items()) or 'default options'}), "
          f"batch {args.batch}, seed {args.seed}, {args.device}, {mode}")
    lines = []
    if mismatch:
        print(f"the models' weights differ in {len(mismatch)} of {len(tm.state_dict())} tensors:")
        for key, what in mismatch[:args.rows]:
            print(f"  {key}: {what}")
        if len(mismatch) > args.rows:
            print(f"  ... and {len(mismatch) - args.rows} more")
        key, what = mismatch[0]
        lines.append(f"weights: first divergence: {key} ({what})")
    if unpaired:
        print(f"not compared: {len(unpaired)} modules only one framework runs (computed inside a fused parent), "
              f"e.g. {', '.join(unpaired[:3])}")
    if rows:
        print(table(rows, shown_rows(rows, args.rows, args.all)))
        lines.append(summary(rows, "outputs"))
    if grad_rows:
        print(table(grad_rows, shown_rows(grad_rows, args.rows, args.all), gradients=True))
        lines.append(summary(grad_rows, "gradients"))
    for line in lines:
        print(line)
    first_divergent = (mismatch[0][0] if mismatch else None) or next(
        (r.name for r in (first(rows), first(grad_rows)) if r is not None), None)
    if args.json:
        write_json(args.json, {
            "model": args.model, "options": {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
            "batch": args.batch, "seed": args.seed, "device": args.device, "train": args.train,
            "tolerance": {"noise_floors": TOLERANCE, "of_scale": float(ULPS)},
            "weights": [{"key": k, "difference": w} for k, w in mismatch],
            "modules": [asdict(r) for r in rows], "gradients": [asdict(r) for r in grad_rows], "unpaired": unpaired,
            "first_divergent": first_divergent,
            "first_divergent_gradient": next((r.name for r in grad_rows if r.verdict == "differs"), None)})
    return 1 if first_divergent is not None or any(r.verdict != "agrees" for r in rows + grad_rows) else 0


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args = parse_args(argv)
        return run(args)
    except Exception as e:  # every failure is one line (a traceback only with --debug)
        from weights_convert import CheckpointError
        from weights_convert.escaping import one_line

        if args is not None and args.debug:
            traceback.print_exc()
        msg = str(e).strip("'\"")
        if not isinstance(e, (BadInput, CheckpointError, OSError, ValueError)):
            msg = f"{type(e).__name__}: {msg}"
        print(f"{PROG}: error: {one_line(msg)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
