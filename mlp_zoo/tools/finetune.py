#!/usr/bin/env python
"""Fine-tune any variant from any checkpoint in PyTorch, in Jittor, or in both side by side, on a folder of class
folders or on scikit-learn's handwritten digits (offline), in one process or data-parallel (torchrun / mpirun),
and compare the two frameworks' training curves.

    python tools/finetune.py --model mixer_s32 --img-size 64 --framework both --epochs 1 --plot
    torchrun --standalone --nproc-per-node 2 tools/finetune.py --framework torch --model mixer_s32 --img-size 64
    mpirun -np 2 --allow-run-as-root --oversubscribe .venv/bin/python tools/finetune.py --framework jittor ...
    python tools/finetune.py --resume OUT        # continue a run from its last checkpoint (same arguments)

SIGTERM (preemption) stops every rank after its current optimizer step, saves the training state and exits 143
with a line saying how to resume; the image workers never outlive the run.

The recipe, the batch order and the checkpoints live in training/ (see docs/training_at_scale.md).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from mlp_zoo.model_specs import VARIANTS, variant
from mlp_zoo.model_specs.pretrained_cfg import KEYS as CFG_KEYS, pretrained_cfg
from mlp_zoo.model_specs.smlp import parse_options
from mlp_zoo.training.checkpoint import remove_stale_temporaries, state_path
from mlp_zoo.training.data import StreamedData, read_source
from mlp_zoo.training.loop import Run, train
from mlp_zoo.training.plan import Layout, steps_per_epoch
from mlp_zoo.training.preemption import PREEMPTED_EXIT, Preempted, Preemption

JITTOR_CONVENTIONS = """\
Jittor conventions overridden (jittor_support/optim.py gives Jittor torch.optim's semantics): SGD's momentum buffer
starts as the first gradient, undamped (Jittor: zero, damped from the first step); step() keeps the gradients
until zero_grad() (Jittor: step() zeroes them); AdamW's bias correction counts steps (Jittor: backward calls);
stop-grad parameters are skipped. Not overridable: Jittor gives a parameter the loss does not reach a zero
gradient, so weight decay still moves it (every parameter of these models is reached).
Side by side, both frameworks start from the same weights (built in PyTorch, copied to Jittor) and see the same
batches in the same order; stochastic depth must stay off (--drop-path 0), as its masks are random per framework.
"""

# how a family takes an input size other than 224: as img_size=... (ViP: the sizes its permute MLPs can shrink to),
# or as it comes (all convolutions)
SIZE_ARGUMENT = {"mixer": "img_size", "smlp": "img_size", "vip": "img_size", "convmlp": None}
RUN_ARGS = "finetune_args.json"  # the arguments of a run, read back by --resume
LISTING = "image_paths.bin"  # the image folder's paths, mapped by every process (image_data.path_store)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=JITTOR_CONVENTIONS,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(VARIANTS), metavar="NAME", help="variant to fine-tune (required)")
    p.add_argument("--framework", choices=("torch", "jittor", "both"), default="torch",
                   help="train in one framework, or in both side by side and compare (default %(default)s)")
    p.add_argument("--pretrained", "--checkpoint", dest="pretrained", metavar="WEIGHTS",
                   help="the weights to start from: a file in any supported format, or a release name such as "
                        "smlpnet_s.spach_in1k (`mlp-zoo releases list`); none: random init. Its classifier is "
                        "replaced when the class count differs")
    p.add_argument("--data", default="digits", help="'digits' (scikit-learn's, upscaled) or an image folder with "
                                                   "one folder per class (a fixed 80/20 train/test split)")
    p.add_argument("--aug", choices=("rrc-flip", "none"), default="rrc-flip",
                   help="training augmentation: timm's RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3, the model's "
                        "interpolation) + horizontal flip, or none (the evaluation transform); default %(default)s")
    p.add_argument("--workers", type=int, default=2,
                   help="processes decoding and augmenting images (0: in the training process); default %(default)s")
    p.add_argument("--img-size", type=int, default=224, help="input size (default 224, the models' own; Mixer "
                                                             "takes a multiple of its patch, sMLPNet of 32, ViP "
                                                             "the sizes docs/resolution.md lists, ConvMLP any)")
    p.add_argument("--epochs", type=int, default=1, help="test accuracy is reported after each (default 1)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="global batch of one forward/backward over all processes (default %(default)s); "
                        "the last partial batch of an epoch is dropped")
    p.add_argument("--accum-steps", type=int, default=1,
                   help="micro-batches accumulated per optimizer step: a step sees batch-size x accum-steps images")
    p.add_argument("--steps", type=int, help="stop after this many optimizer steps in all")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="adamw", help="default %(default)s")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default %(default)g)")
    p.add_argument("--warmup-steps", type=int, default=0, help="linear warmup steps, overlapping the cosine decay "
                                                               "(timm's schedule: training/schedule.py)")
    p.add_argument("--warmup-lr", type=float, default=1e-5,
                   help="learning rate of the first warmup step (default %(default)g, timm's --warmup-lr)")
    p.add_argument("--min-lr", type=float, default=None,
                   help="where the cosine ends (default: no decay, a constant --lr after the warmup)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default %(default)s)")
    p.add_argument("--nesterov", action="store_true", help="SGD with Nesterov momentum")
    p.add_argument("--weight-decay", type=float, default=0.05,
                   help="coupled for SGD, decoupled for AdamW (default %(default)s)")
    p.add_argument("--label-smoothing", type=float, default=0.0, help="e.g. 0.1 (default %(default)s)")
    p.add_argument("--clip-grad", type=float, default=None, help="clip the global gradient 2-norm to this")
    p.add_argument("--ema-decay", type=float, default=0.0,
                   help="keep an EMA of the weights (timm's ModelEmaV2, e.g. 0.9998), evaluated and saved beside "
                        "the raw weights as OUT/<model>_<framework>_ema.*")
    p.add_argument("--drop-path", type=float, default=0.0, help="stochastic depth rate (must be 0 with both)")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="sMLPNet only: an ablation option, e.g. fusion=sum local=false sparse_stages=0111 "
                        "(docs/ablations.md); repeatable")
    p.add_argument("--amp", action="store_true", help="mixed precision: torch.autocast (bfloat16 on the CPU, "
                                                      "float16 + GradScaler on CUDA); Jittor: CUDA only")
    p.add_argument("--device", choices=("auto", "cpu"), default="auto", help="auto: CUDA when present")
    p.add_argument("--seed", type=int, default=0, help="seeds the init and the batch order (default %(default)s)")
    p.add_argument("--save-every", type=int, default=0,
                   help="also save the full training state every N steps (always at each epoch's end)")
    p.add_argument("--resume", metavar="OUT", help="continue the run in OUT from its last checkpoint, with the "
                                                   "arguments it was started with (other options are ignored)")
    p.add_argument("--log-every", type=int, default=1, help="print a progress line every N steps")
    p.add_argument("--compare-steps", type=int, default=10, help="report the loss difference over the first N steps")
    p.add_argument("--out", default="finetune_out", help="folder for checkpoints, finetune.json and the plot")
    p.add_argument("--plot", action="store_true", help="save the loss curves as OUT/loss_curves.png")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    if args.resume:
        saved = Path(args.resume) / RUN_ARGS
        if not saved.exists():
            p.error(f"--resume {args.resume}: no {RUN_ARGS} there (not the OUT folder of a run)")
        try:
            recorded = json.loads(saved.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            p.error(f"--resume {args.resume}: {saved} cannot be read ({e})")
        # options added since the run started take their defaults
        args = argparse.Namespace(**{**vars(p.parse_args([])), **recorded, "resume": args.resume,
                                     "out": args.resume})
    if not args.model:
        p.error("--model is required")
    check_options(p, args)
    if args.model_option:
        if variant(args.model).family != "smlp":
            p.error(f"--model-option: {args.model} has no ablation options (sMLPNet variants only)")
        try:
            parse_options(args.model_option)
        except ValueError as e:
            p.error(f"--model-option {e}")
    if args.framework == "both" and args.drop_path:
        p.error("--framework both needs --drop-path 0: each framework draws its own stochastic-depth masks")
    if args.min_lr is None:
        args.min_lr = args.lr
    if not args.resume:  # recorded absolute, so that --resume works from any folder
        args.out = os.path.abspath(args.out)
        if args.data != "digits":
            args.data = os.path.abspath(args.data)
        if args.pretrained:
            args.pretrained = os.path.abspath(args.pretrained)
    if "OMPI_COMM_WORLD_SIZE" in os.environ and args.framework != "jittor":
        p.error("under mpirun only --framework jittor runs (PyTorch's data-parallel runs under torchrun)")
    if "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1 and args.framework != "torch":
        p.error("under torchrun only --framework torch runs (Jittor's data-parallel runs under mpirun)")
    return args


def check_options(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every option's value, before anything is read or written: one line naming the option, exit status 2."""
    from weights_convert.resample import check_input_size

    at_least = {"img_size": 1, "epochs": 1, "batch_size": 1, "accum_steps": 1, "steps": 1, "workers": 0,
                "warmup_steps": 0, "save_every": 0, "log_every": 1, "compare_steps": 1}
    for key, low in at_least.items():
        value = getattr(args, key)
        if value is not None and value < low:
            p.error(f"--{key.replace('_', '-')} {value}: must be >= {low}")
    for key in ("lr", "warmup_lr", "min_lr", "momentum", "weight_decay", "label_smoothing", "clip_grad",
                "ema_decay", "drop_path"):
        value = getattr(args, key)
        if value is not None and not np.isfinite(value):
            p.error(f"--{key.replace('_', '-')} {value}: must be a finite number")
    if args.lr <= 0:
        p.error(f"--lr {args.lr:g}: must be > 0")
    for key in ("warmup_lr", "min_lr", "momentum", "weight_decay"):
        if getattr(args, key) is not None and getattr(args, key) < 0:
            p.error(f"--{key.replace('_', '-')} {getattr(args, key):g}: must be >= 0")
    for key in ("label_smoothing", "ema_decay", "drop_path"):
        if not 0 <= getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} {getattr(args, key):g}: must be in [0, 1)")
    if args.clip_grad is not None and args.clip_grad <= 0:
        p.error(f"--clip-grad {args.clip_grad:g}: must be > 0")
    try:
        check_input_size(args.model, args.img_size)
    except ValueError as e:
        p.error(f"--img-size {args.img_size}: {e}")
    if args.data != "digits" and not os.path.isdir(args.data):
        p.error(f"--data {args.data}: no such folder (give 'digits' or a folder of class folders)")
    if args.pretrained is not None and not args.resume and not os.path.isfile(args.pretrained):
        p.error(f"--pretrained {args.pretrained}: no such file")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        p.error(f"--out {args.out}: exists and is not a folder")
    parent = next(q for q in [out, *out.absolute().parents] if q.exists())
    if not os.access(parent, os.W_OK):
        p.error(f"--out {args.out}: {parent} is not writable")


def fail(message: str) -> SystemExit:
    """An ordinary mistake found after parsing (an empty folder, a bad checkpoint): argparse's one line."""
    print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)
    return SystemExit(2)


def model_kwargs(name: str, img_size: int, num_classes: int, drop_path: float) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"num_classes": num_classes, "drop_path_rate": drop_path}
    family = variant(name).family
    if SIZE_ARGUMENT[family]:  # always: a pretrained file of another size is resampled to this one
        kwargs[SIZE_ARGUMENT[family]] = img_size
    return kwargs


def training_cfg(model: Any, args: argparse.Namespace, classes: list[str], override: dict[str, Any]
                 ) -> dict[str, Any]:
    """The model's ``pretrained_cfg`` (its release's normalisation and interpolation) at the training size, with
    these classes: what the data is normalised with, and what the saved weights carry (``with_cfg``)."""
    base = getattr(model, "pretrained_cfg", None) or pretrained_cfg(args.model)
    cfg = {k: v for k, v in base.items() if k in CFG_KEYS}
    return {**cfg, "architecture": args.model, "tag": "finetune", "input_size": (3, args.img_size, args.img_size),
            "num_classes": len(classes), "label_names": list(classes), **override}


def frameworks(args: argparse.Namespace) -> list[str]:
    return ["torch", "jittor"] if args.framework == "both" else [args.framework]


def build_trainers(args: argparse.Namespace, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The trainers: each model built by its framework, or side by side with PyTorch's weights in both.
    Under torchrun / mpirun every rank builds its model; rank 0's weights are broadcast to the others.
    A resumed run whose every framework has its training state needs no pretrained file: the state holds every
    weight (the file may have moved since)."""
    trainers: dict[str, Any] = {}
    state = None
    if args.resume and all(state_path(Path(args.out), fw).exists() for fw in frameworks(args)):
        args = argparse.Namespace(**{**vars(args), "pretrained": None})
    if args.framework in ("torch", "both"):
        import torch

        import models_pytorch
        from mlp_zoo.training.torch_trainer import TorchTrainer

        torch.manual_seed(args.seed)
        model = models_pytorch.create_model(args.model, pretrained=args.pretrained, **kwargs)
        state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
        trainers["torch"] = TorchTrainer(model, args)
    if args.framework in ("jittor", "both"):
        import models_jittor
        from mlp_zoo.jittor_support.runtime import jt
        from mlp_zoo.training.jittor_trainer import JittorTrainer

        jt.set_global_seed(args.seed)  # differs per rank under MPI: the optimizer broadcasts rank 0's weights
        if state is None:
            model = models_jittor.create_model(args.model, pretrained=args.pretrained, **kwargs)
            # Jittor's random init is lazy, and its values depend on the order the ops run in: run them in
            # parameter order, so the weights depend on the seed alone (as under mpirun, where they are broadcast
            # in that order); else a one-process run starts elsewhere than rank 0 of an MPI run
            for p in model.parameters():
                p.sync()
        else:
            model = models_jittor.create_model(args.model, **kwargs)
            models_jittor.load_state(model, state)
        trainers["jittor"] = JittorTrainer(model, args)
    return trainers


def shown_accuracy(accuracy: float | None) -> str:
    """An accuracy in %, or '-' where no test image could be read."""
    return "-" if accuracy is None else f"{accuracy:.2f}"


def compare(runs: dict[str, Run], first: int) -> dict[str, float | None]:
    a, b = np.array(runs["torch"].losses), np.array(runs["jittor"].losses)
    diff = np.abs(a - b)
    accuracies = [runs[f].accuracies[-1] for f in ("torch", "jittor")]
    return {"compare_steps": min(first, len(diff)), "max_abs_diff_first": float(diff[:first].max()),
            "max_abs_diff_all": float(diff.max()), "steps": len(diff),
            "accuracy_diff": None if None in accuracies else abs(accuracies[0] - accuracies[1])}


def plot(runs: dict[str, Run], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = len(runs) == 2
    fig, axes = plt.subplots(1, 2 if both else 1, figsize=(11 if both else 6, 4), squeeze=False)
    for run, style in zip(runs.values(), ("-", "--")):
        axes[0, 0].plot(np.arange(1, len(run.losses) + 1), run.losses, style,
                        label=f"{run.framework} (test acc {shown_accuracy(run.accuracies[-1])}%)")
    axes[0, 0].set(xlabel="step", ylabel="training loss", title=title)
    axes[0, 0].legend()
    if both:
        diff = np.abs(np.array(runs["torch"].losses) - np.array(runs["jittor"].losses))
        axes[0, 1].semilogy(np.arange(1, len(diff) + 1), np.maximum(diff, 1e-9))
        axes[0, 1].set(xlabel="step", ylabel="|loss torch - loss jittor|", title="difference (0 drawn at 1e-9)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(args: argparse.Namespace, runs: dict[str, Run], out: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"args": vars(args), "runs": {fw: asdict(run) for fw, run in runs.items()}}
    print("| framework | steps | final loss | test accuracy per epoch (%) | EMA (%) | seconds | checkpoint |")
    print("|---|---|---|---|---|---|---|")
    for run in runs.values():
        print(f"| {run.framework} | {len(run.losses)} | {run.losses[-1]:.4f} | "
              f"{', '.join(map(shown_accuracy, run.accuracies))} | "
              f"{', '.join(map(shown_accuracy, run.ema_accuracies)) or '-'} | {run.seconds:.1f} | {run.checkpoint} |")
    if len(runs) == 2:
        result["comparison"] = c = compare(runs, args.compare_steps)
        print(f"max |loss torch - loss jittor|: {c['max_abs_diff_first']:.2e} over the first {c['compare_steps']} "
              f"steps, {c['max_abs_diff_all']:.2e} over all {c['steps']}; accuracy difference "
              + ("-" if c["accuracy_diff"] is None else f"{c['accuracy_diff']:.2f} points"))
    if args.plot:
        plot(runs, out / "loss_curves.png", f"{args.model} on {args.data}, {args.img_size}px, {args.optimizer}")
    (out / "finetune.json").write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with Preemption() as preemption:
        try:
            return _run(args, preemption)
        except Preempted as stop:
            if stop.rank == 0:
                launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 or "OMPI_COMM_WORLD_SIZE" in os.environ
                print(f"{stop}; resume with: mlp-zoo finetune --resume {args.out}"
                      + (" (under the same torchrun / mpirun launch)" if launched else ""), file=sys.stderr, flush=True)
            raise SystemExit(PREEMPTED_EXIT) from None


def _run(args: argparse.Namespace, preemption: Preemption) -> dict[str, Any]:
    from mlp_zoo.image_data.folder import FolderError
    from weights_convert import CheckpointError

    out = Path(args.out)
    created, listed = not out.exists(), (out / LISTING).exists()
    out.mkdir(parents=True, exist_ok=True)  # the image listing goes there; removed again when a check below fails
    try:
        try:
            source, labels, classes, cfg_override = read_source(args.data, args.img_size, out / LISTING)
        except FolderError as e:
            raise fail(f"--data {e}") from None
        kwargs = {**model_kwargs(args.model, args.img_size, len(classes), args.drop_path),
                  **parse_options(getattr(args, "model_option", []))}  # a resumed run's args may predate it
        try:
            trainers = build_trainers(args, kwargs)
        except CheckpointError as e:
            raise fail(f"--pretrained {e}") from None
        first = next(iter(trainers.values()))
        # the cfg a resumed run normalises with is the one its first part recorded (the pretrained file may be gone)
        cfg = getattr(args, "training_cfg", None) or training_cfg(first.model, args, classes, cfg_override)
        args.training_cfg = cfg
        data = StreamedData(source, labels, classes, cfg, args.seed, args.aug != "none", args.workers)
        if first.world_size > 1 and args.batch_size % first.world_size:
            raise fail(f"--batch-size {args.batch_size}: must be a multiple of the {first.world_size} processes")
        layout = Layout(args.batch_size, args.accum_steps, first.world_size)
        if steps_per_epoch(len(data.train), layout) == 0:
            raise fail(f"--data {args.data}: its {len(data.train)} training images make no step of "
                       f"--batch-size {args.batch_size} x --accum-steps {args.accum_steps} = {layout.samples_per_step}")
    except SystemExit:
        if created:  # nothing of a refused run is left
            shutil.rmtree(out, ignore_errors=True)
        raise
    rank = first.rank
    if rank == 0:
        for stale in remove_stale_temporaries(out):
            print(f"removed {stale}, left by a writer killed while saving", file=sys.stderr)
        if not args.resume:
            (out / RUN_ARGS).write_text(json.dumps(vars(args), indent=1))
        world = next(iter(trainers.values())).world_size
        print(f"{args.model} on {args.data}: {len(data.classes)} classes, {len(data.train)} train / "
              f"{len(data.test)} test images at {args.img_size}x{args.img_size}, global batch {args.batch_size} x "
              f"{args.accum_steps} accumulated over {world} process(es), {args.optimizer} lr {args.lr:g}, "
              f"augmentation {args.aug}, mean {tuple(cfg['mean'])} std {tuple(cfg['std'])}", file=sys.stderr)
    try:
        runs = {fw: train(trainer, data, args, out, preemption) for fw, trainer in trainers.items()}
    except SystemExit:  # refused (a cut-off checkpoint to resume from): leave the folder as it was found
        if rank == 0 and not listed:
            (out / LISTING).unlink(missing_ok=True)
        raise
    return report(args, runs, out) if rank == 0 else {}


if __name__ == "__main__":
    main()
