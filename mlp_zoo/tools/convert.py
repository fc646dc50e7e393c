#!/usr/bin/env python
"""Convert a checkpoint between PyTorch and Jittor, strictly, for any model of the zoo.

  python tools/convert.py torch2jittor SRC DST.pkl [--model NAME] [--verify]
  python tools/convert.py jittor2torch SRC.pkl DST.pth [--model NAME] [--verify]
  python tools/convert.py torch2jittor SRC DST.pkl --img-size 384[,288] [--resample pi|interp] [--verify]

SRC may be a release name (smlpnet_s.spach_in1k, hf-hub:timm/...; `mlp-zoo releases list`), fetched once into
the cache, or any supported file: PyTorch .pth/.pt/.bin/.ckpt/.pth.tar (zip or legacy), Jittor .pkl,
.safetensors or .npz, as saved by either framework or as released officially (SPACH sMLPNet, ...).
The usual wrappers ('model', 'state_dict', 'state_dict_ema', 'module.' prefixes) are unwrapped and reported.
Without --model the architecture is detected from the keys and shapes. Nothing is written unless every
key and shape fits the model; the output appears only when complete, and never replaces a file unless
--force is given. --img-size writes the weights for another input size, their token-mixing weights resampled
(docs/resolution.md); a size the model cannot take is refused. Exit status: 0 on success, 1 when --verify
finds a mismatch, 2 on any error, 130 when interrupted (Ctrl-C) and 143 when terminated (SIGTERM); an
interrupted run leaves no file behind.
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable

from weights_convert import CheckpointError, check_destination, read_checkpoint, write_atomic
from mlp_zoo.model_specs import FAMILIES, VARIANTS, variant
from mlp_zoo.release_files import resolve_weights
from weights_convert.escaping import one_line, shown
from weights_convert.formats import TORCH_SUFFIXES
from weights_convert.checks import match_state
from weights_convert.pretrained import described_options, file_options
from weights_convert.resample import KERNELS, resample_state

PROG = "mlp-zoo convert"  # as `python tools/convert.py` names it too

DIRECTIONS = {"torch2jittor": ("Jittor", (".pkl",)),
              "jittor2torch": ("PyTorch", TORCH_SUFFIXES + (".safetensors",))}
VERIFY_TOLERANCE = 1e-4  # max abs diff of logits relative to max |logit|


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("direction", choices=sorted(DIRECTIONS), help="which framework the output is for")
    p.add_argument("src", help="checkpoint to read (never modified), or a release name such as "
                               "smlpnet_s.spach_in1k, downloaded once into the cache (mlp-zoo releases list)")
    p.add_argument("dst", help="file to write: .pkl for Jittor; .pth/.pt/.bin/.ckpt/.pth.tar/.safetensors "
                               "for PyTorch")
    p.add_argument("--model", help="variant name (default: detected from the keys and shapes)")
    p.add_argument("--verify", action="store_true",
                   help="build the model in both frameworks, run a random batch, report the max abs diff")
    p.add_argument("--force", action="store_true", help="overwrite DST if it exists")
    p.add_argument("--ema", action="store_true", help="take the EMA weights when the file holds both")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow pickled objects beyond arrays (can run code: only for files you trust)")
    p.add_argument("--allow-nonfinite", action="store_true", help="convert weights holding NaN or Inf")
    p.add_argument("--img-size", type=_size, metavar="H[,W]",
                   help="write the weights for this input size, resampling the token-mixing weights")
    p.add_argument("--resample", choices=("pi", "interp"), default="pi",
                   help="with --img-size: PI-resize (default) or plain interpolation of weights reading the grid")
    p.add_argument("--resample-kernel", choices=KERNELS, default="bilinear",
                   help="with --img-size: the resize operator's kernel (default %(default)s)")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    return p.parse_args(argv)


def _size(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected H or H,W (integers), got {text!r}")
    return (parts[0], parts[-1])


def expected_shapes(name: str, kwargs: dict) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes of ``name``, from the PyTorch model built without allocating weights."""
    import torch

    import models_pytorch

    if name not in models_pytorch.list_models():
        raise CheckpointError(f"unknown model '{name}'; known: {', '.join(models_pytorch.list_models())}")
    with torch.device("meta"):
        return models_pytorch.state_shapes(models_pytorch.create_model(name, **kwargs))


def run(args: argparse.Namespace) -> int:
    target, suffixes = DIRECTIONS[args.direction]
    if not args.dst.lower().endswith(suffixes):
        raise CheckpointError(f"{args.dst}: {args.direction} writes a {target} file ({', '.join(suffixes)})")
    args.src = str(resolve_weights(args.src, args.model))  # a release name: its file, downloaded once
    check_destination(args.dst, force=args.force, src=args.src)
    ckpt = read_checkpoint(args.src, trust_pickle=args.trust_pickle, allow_nonfinite=args.allow_nonfinite,
                           ema=args.ema)
    if args.model:
        name, kwargs = args.model, dict(ckpt.model_kwargs)
        shown_kwargs = dict(kwargs)
        if name in VARIANTS:  # build as the file needs (e.g. its class count), as create_model does
            family = FAMILIES[variant(name).family]
            kwargs.update(file_options(family, ckpt.state))
            shown_kwargs.update(described_options(family, ckpt.state))  # what differs from the defaults
        detected = None
    else:
        name, kwargs = ckpt.detect()
        shown_kwargs, detected = kwargs, name
    state, needs, resampled = ckpt.state, dict(ckpt.model_kwargs), ""
    if args.img_size:
        state, size_args, resampled = resample_state(name, state, args.img_size, args.resample,
                                                     args.resample_kernel, kwargs)
        kwargs = {**{k: v for k, v in kwargs.items() if k != "img_size"}, **size_args}
        shown_kwargs = {**{k: v for k, v in shown_kwargs.items() if k != "img_size"}, **size_args}
        grid = size_args.get("img_size", (0, 0))
        if "segment_dims" in size_args or (variant(name).family == "mixer" and grid[0] != grid[1]):
            needs.update(size_args)  # ViP's grid, or a non-square Mixer grid: the weights' shapes do not say
    state = match_state(state, expected_shapes(name, kwargs), ckpt.path, name)
    fmt = write_atomic(args.dst, state, force=args.force)
    how = "detected" if detected else "given"
    extra = "".join(f", {k}={v}" for k, v in shown_kwargs.items())
    print(f"read {shown(args.src, 4096)}: {ckpt.summary()}")
    print(f"wrote {shown(args.dst, 4096)}: {name} ({how}{extra}), {len(state)} tensors, {fmt} format")
    if resampled:
        print(f"resample: {resampled}")
    if needs:  # a weights file stores no build options: say which ones the outputs need
        options = ", ".join(f"{k}={v!r}" for k, v in needs.items())
        print(f"note: the {ckpt.layout} outputs need {options}: "
              f"create_model({name!r}, pretrained={shown(repr(args.dst), 4096)}, {options})")
    if args.verify:
        # the output is complete: SIGTERM may kill again. Jittor's compile pool forks workers and ends them with
        # SIGTERM, which Python drops when it lands between a fork and the child's reset of its signal flags:
        # with our handler inherited, such a worker lives on and the pool waits for it forever (seen in CI)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from mlp_zoo.tools.pairs import cross_check

        check = cross_check(name, state, **kwargs)
        ok = check.relative <= VERIFY_TOLERANCE
        print(f"verify: max abs diff {check.max_abs_diff:.3g} (max |logit| {check.max_abs_logit:.3g}, "
              f"relative {check.relative:.2g}, tolerance {VERIFY_TOLERANCE:g}): {'OK' if ok else 'MISMATCH'}")
        if not ok:  # the same weights in both frameworks, as checked here: which module parts
            side = "--jittor" if args.direction == "torch2jittor" else "--torch"
            size = f" --img-size {args.img_size[0]},{args.img_size[1]}" if args.img_size else ""
            print(f"verify: to see where the two part: mlp-zoo crosscheck --model {name} {side} "
                  f"{shlex.quote(args.dst)}{size}")
        return 0 if ok else 1
    return 0


class Stopped(BaseException):
    """A signal asked the converter to stop; raised where it is, so that temporary files are removed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stopper(owner: int) -> Callable[[int, object], None]:
    """A handler raising Stopped in process ``owner`` only: a forked worker (Jittor compiles in a process
    pool, which it ends with SIGTERM) inherits the handler and must still die as it would have."""
    def stop(signum: int, frame: object) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Stopped(signum)
    return stop


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a name that is not valid in the terminal's encoding still prints
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    stop = _stopper(os.getpid())
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    args = None
    try:
        args = parse_args(argv)
        return run(args)
    except Stopped as e:
        print(f"{PROG}: error: stopped by {e}; no partial output was left behind", file=sys.stderr)
        return 128 + e.signum
    except Exception as e:  # every failure is one line (a traceback only with --debug)
        if args is not None and args.debug:
            traceback.print_exc()
        msg = str(e).strip("'\"")
        if not isinstance(e, (CheckpointError, OSError)):
            msg = f"{type(e).__name__}: {msg}"
        print(f"{PROG}: error: {one_line(msg)}", file=sys.stderr)
        return 2
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


if __name__ == "__main__":
    sys.exit(main())
