"""What tools/predict.py and tools/validate.py share: the model in one or both frameworks with its
``pretrained_cfg`` (overrides applied), the images prepared in worker processes, and the class names.

Kept free of torch and Jittor imports at module level: worker processes (spawned) import this module to
prepare images and must stay light.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np


from mlp_zoo.image_data import BadImage, class_names, eval_transform, load_rgb, stream
from mlp_zoo.image_data.transforms import CROP_MODES, FILTERS

FRAMEWORKS = ("torch", "jittor")
SIZE_ARGUMENT = {"mixer": True, "smlp": True, "convmlp": False, "vip": True}  # families built with img_size=...


class ToolError(Exception):
    """A one-line error for the user; the tools exit with status 1 (2 for --strict on a bad image)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="variant name (default: detected from --pretrained)")
    p.add_argument("--pretrained", "--checkpoint", dest="checkpoint", metavar="WEIGHTS",
                   help="the weights: a file in any supported format, or a release name such as "
                        "smlpnet_s.spach_in1k, downloaded once (`mlp-zoo releases list`); default: random "
                        "weights, seeded, the same in both frameworks")
    p.add_argument("--framework", choices=FRAMEWORKS + ("both",), default="torch",
                   help="run in one framework or in both, compared (default %(default)s)")
    p.add_argument("--trust-pickle", action="store_true", help="allow pickled objects beyond arrays (trusted files)")
    p.add_argument("--batch-size", type=int, default=32, help="default %(default)s")
    p.add_argument("--workers", type=int, default=2, help="image-preparing processes; 0 prepares inline "
                                                          "(default %(default)s)")
    p.add_argument("--img-size", type=int, help="override the cfg's input size (and build the model at it)")
    p.add_argument("--crop-pct", type=float, help="override the cfg's crop_pct")
    p.add_argument("--crop-mode", choices=CROP_MODES, help="override the cfg's crop_mode")
    p.add_argument("--interpolation", choices=sorted(FILTERS), help="override the cfg's interpolation")
    p.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"), help="override the cfg's mean")
    p.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"), help="override the cfg's std")
    p.add_argument("--exif-transpose", action="store_true", help="apply EXIF orientation (timm does not)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad image (exit status 2)")
    p.add_argument("--seed", type=int, default=0, help="seeds a random init (default %(default)s)")


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.model is None and args.checkpoint is None:
        p.error("give --model, --pretrained, or both")
    if args.batch_size < 1 or args.workers < 0:
        p.error("--batch-size must be >= 1 and --workers >= 0")
    if args.img_size is not None:
        from mlp_zoo.model_specs import VARIANTS
        from weights_convert.resample import check_input_size

        if args.img_size < 1:
            p.error(f"--img-size {args.img_size}: must be >= 1")
        if args.model in VARIANTS:
            try:
                check_input_size(args.model, args.img_size)
            except ValueError as e:
                p.error(f"--img-size {args.img_size}: {e}")
    if args.crop_pct is not None and not 0 < args.crop_pct <= 4:
        p.error("--crop-pct must be in (0, 4]")
    if args.std is not None and min(args.std) <= 0:
        p.error("--std must be > 0")


def escaped(path: str) -> str:
    from weights_convert.escaping import shown

    return shown(path)


@dataclass
class Models:
    """The model in each framework asked for (the same weights), and the cfg its images are prepared with."""

    name: str
    cfg: dict[str, Any]
    frameworks: dict[str, Any] = field(default_factory=dict)  # framework -> eval-mode model
    param_count: int = 0

    def logits(self, framework: str, x: np.ndarray) -> np.ndarray:
        model = self.frameworks[framework]
        if framework == "torch":
            import torch

            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy().astype(np.float64)
        from mlp_zoo.jittor_support.runtime import jt

        with jt.no_grad():
            out = model(jt.array(x)).numpy().astype(np.float64)
        jt.sync_all()
        jt.gc()
        return out


def load_models(args: argparse.Namespace) -> Models:
    """The model(s) of ``args``: from --checkpoint in each framework, or randomly initialised in PyTorch (seeded)
    and copied to Jittor, so both compute with the same weights; ``cfg`` is ``model.pretrained_cfg`` with the
    command-line overrides."""
    from mlp_zoo.model_specs import VARIANTS
    from mlp_zoo.release_files import resolve_weights
    from weights_convert import CheckpointError, read_checkpoint

    name = args.model
    try:
        weights = None if args.checkpoint is None else resolve_weights(args.checkpoint, name)
        if name is None:
            name, _ = read_checkpoint(weights, trust_pickle=args.trust_pickle).detect()
        if name not in VARIANTS:
            raise ToolError(f"unknown model {escaped(name)}; known: {', '.join(sorted(VARIANTS))}")
        kwargs: dict[str, Any] = {}
        if args.img_size is not None:
            from weights_convert.resample import check_input_size

            try:  # the model detected from --checkpoint, checked as --model is at parse time
                check_input_size(name, args.img_size)
            except ValueError as e:
                raise ToolError(f"--img-size {args.img_size}: {e}", status=2) from None
            if SIZE_ARGUMENT[VARIANTS[name].family]:
                kwargs["img_size"] = args.img_size
        wanted = FRAMEWORKS if args.framework == "both" else (args.framework,)
        models = Models(name, {})
        state = None
        for framework in wanted:
            if framework == "torch":
                import torch

                import models_pytorch

                torch.manual_seed(args.seed)
                model = models_pytorch.create_model(name, pretrained=weights, trust_pickle=args.trust_pickle,
                                                    **kwargs).eval()
                if args.checkpoint is None:  # every weight random (timm zero-inits Mixer's head: uniform output)
                    from mlp_zoo.tools.pairs import random_weights

                    models_pytorch.load_state(model, random_weights(name, args.seed, **kwargs))
                state = {k: v.numpy() for k, v in model.state_dict().items()}
                models.param_count = sum(p.numel() for p in model.parameters())
            else:
                import models_jittor
                from mlp_zoo.jittor_support.runtime import jt

                jt.set_global_seed(args.seed)
                if args.checkpoint is None:  # the random weights PyTorch has, or the same draw
                    from mlp_zoo.tools.pairs import random_weights

                    model = models_jittor.create_model(name, **kwargs)
                    models_jittor.load_state(model, state if state is not None else
                                             random_weights(name, args.seed, **kwargs))
                else:
                    model = models_jittor.create_model(name, pretrained=weights,
                                                       trust_pickle=args.trust_pickle, **kwargs)
                model.eval()
                models.param_count = models.param_count or sum(int(np.prod(p.shape)) for p in model.parameters())
            models.frameworks[framework] = model
            if models.cfg and model.pretrained_cfg != models.cfg:
                raise ToolError(f"pretrained_cfg differs between frameworks: {models.cfg} != {model.pretrained_cfg}")
            models.cfg = dict(model.pretrained_cfg)
    except CheckpointError as e:
        raise ToolError(str(e)) from None
    except (ValueError, KeyError, TypeError) as e:
        raise ToolError(f"{escaped(args.checkpoint or name)}: {e}") from None
    models.cfg = overridden(models.cfg, args)
    return models


def overridden(cfg: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``cfg`` with every cfg option given on the command line replacing its value."""
    cfg = dict(cfg)
    if args.img_size is not None:
        cfg["input_size"] = (3, args.img_size, args.img_size)
    for key in ("crop_pct", "crop_mode", "interpolation"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    for key in ("mean", "std"):
        if getattr(args, key) is not None:
            cfg[key] = tuple(getattr(args, key))
    try:
        eval_transform(cfg)  # refuses a combination the transform cannot do (e.g. squash with bicubic)
    except ValueError as e:
        raise ToolError(f"preprocessing: {e}") from None
    return cfg


def names_of(cfg: dict[str, Any]) -> list[str]:
    """A name for every class: the cfg's own list, its label set's lemmas, or the index."""
    labels = cfg.get("label_names")
    count = int(cfg["num_classes"])
    if isinstance(labels, list) and len(labels) == count:
        return list(labels)
    if isinstance(labels, str):
        names = class_names(labels)
        if len(names) == count:
            return names
    return [str(i) for i in range(count)]


def prepare(path: str, cfg: dict[str, Any], exif_transpose: bool) -> np.ndarray | BadImage:
    """One image, decoded and transformed; a bad one comes back as ``BadImage`` (runs in a worker process)."""
    image = load_rgb(path, exif_transpose)
    if isinstance(image, BadImage):
        return image
    try:
        return _transform(tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in cfg.items())))(image)
    except Exception as e:  # e.g. memory for an image at the pixel limit: the image is named, the run goes on
        return BadImage(path, f"cannot be prepared ({type(e).__name__}: {e})")


@functools.lru_cache(maxsize=4)
def _transform(cfg_items: tuple) -> Any:
    return eval_transform(dict(cfg_items))


def prepared(paths: Iterable[str], cfg: dict[str, Any], args: argparse.Namespace) -> Iterator[tuple[int, Any]]:
    """(index, array or BadImage) for each path, in order, prepared in ``args.workers`` processes."""
    transform_cfg = {k: cfg[k] for k in ("input_size", "crop_pct", "crop_mode", "interpolation", "mean", "std")}
    load = functools.partial(prepare, cfg=transform_cfg, exif_transpose=args.exif_transpose)
    return stream(paths, load, workers=args.workers, queue_size=max(2 * args.batch_size, 4 * args.workers))


class BadImages:
    """Each bad image reported once, on one line, and counted; with ``strict`` the first is an error."""

    def __init__(self, strict: bool):
        self.strict, self.count = strict, 0

    def report(self, bad: BadImage) -> None:
        if self.strict:
            raise ToolError(f"bad image (--strict): {bad.line()}", status=2)
        self.count += 1
        print(f"skipped: {bad.line()}", file=sys.stderr, flush=True)


def batches(items: Iterator[tuple[int, Any]], size: int, bad: BadImages
            ) -> Iterator[tuple[list[int], np.ndarray]]:
    """Full batches of good images (indices into the input, stacked arrays); bad images reported and left out."""
    indices: list[int] = []
    arrays: list[np.ndarray] = []
    for index, value in items:
        if isinstance(value, BadImage):
            bad.report(value)
            continue
        indices.append(index)
        arrays.append(value)
        if len(indices) == size:
            yield indices, np.stack(arrays)
            indices, arrays = [], []
    if indices:
        yield indices, np.stack(arrays)


class Timer:
    """Seconds spent per framework, and the wall time of the whole loop (images/s per framework: its own model
    time plus the shared image preparation, i.e. what a run in that framework alone would take)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.model_seconds: dict[str, float] = {}

    def images_per_s(self, framework: str, images: int) -> float:
        total = time.perf_counter() - self.start
        others = sum(s for f, s in self.model_seconds.items() if f != framework)
        return images / max(total - others, 1e-9)


def batch_for(asked: int, images: int) -> int:
    """The batch for ``images`` inputs: ``--batch-size``, or all of them when fewer (one photo is not padded to 32:
    the padding would cost 32 images' compute)."""
    return max(1, min(asked, images))


def run_batch(models: Models, x: np.ndarray, batch_size: int, timer: Timer) -> dict[str, np.ndarray]:
    """Logits per framework for ``x``; a short last batch is padded to ``batch_size`` so that Jittor compiles
    one shape only."""
    n = len(x)
    if n < batch_size:
        x = np.concatenate([x, np.zeros((batch_size - n,) + x.shape[1:], x.dtype)])
    out = {}
    for framework in models.frameworks:
        start = time.perf_counter()
        out[framework] = models.logits(framework, x)[:n]
        timer.model_seconds[framework] = timer.model_seconds.get(framework, 0.0) + time.perf_counter() - start
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def topk(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest per row, largest first (ties: the lower index first)."""
    k = min(k, values.shape[1])
    return np.argsort(-values, axis=1, kind="stable")[:, :k]


def write_atomic_text(path: str, text: str) -> None:
    """``text`` to ``path`` through a temporary file in the same folder, renamed into place: never half-written."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part", dir=folder)
    except OSError as e:
        raise ToolError(f"{escaped(path)}: cannot write ({e.strerror or e})") from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0600 is for secrets: an output gets open()'s mode
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        raise ToolError(f"{escaped(path)}: cannot write ({e.strerror or e})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def current_umask() -> int:
    mask = os.umask(0o022)  # reading it means setting it: put it straight back
    os.umask(mask)
    return mask


def check_writable(path: str | None) -> None:
    """Fail before any work when an output file cannot be written."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ToolError(f"{escaped(path)}: is a directory")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise ToolError(f"{escaped(path)}: folder {escaped(folder)} does not exist or is not writable")


class LineProgress:
    """Progress as plain lines, for output that is not a terminal (CI logs, files): one per ``every`` images
    and one at the end, instead of a bar's redrawn frames."""

    def __init__(self, total: int, desc: str, every: int = 1000):
        self.total, self.desc, self.every, self.done = total, desc, every, 0

    def update(self, n: int) -> None:
        before, self.done = self.done, self.done + n
        if self.done // self.every > before // self.every:
            print(f"{self.desc}: {self.done}/{self.total} images", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.done % self.every and self.total >= self.every:
            print(f"{self.desc}: {self.done}/{self.total} images", file=sys.stderr, flush=True)


def progress(total: int, desc: str) -> Any:
    """A tqdm bar on a terminal; elsewhere a line per thousand images (``LineProgress``)."""
    if not sys.stderr.isatty():
        return LineProgress(total, desc)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, dynamic_ncols=True, disable=total < 64)
