#!/usr/bin/env python
"""Fine-tune any variant from any checkpoint in PyTorch, in Jittor, or in both side by side, on a folder of class
folders or on scikit-learn's handwritten digits (offline), and compare the two frameworks' training curves.

    python tools/finetune.py --model mixer_s32 --img-size 64 --framework both --epochs 1 --plot
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model_specs import VARIANTS, variant  # noqa: E402
from image_data.datasets import Dataset, load  # noqa: E402
from model_specs.pretrained_cfg import with_cfg  # noqa: E402

JITTOR_CONVENTIONS = """\
Jittor conventions overridden (jittor_support/optim.py gives Jittor torch.optim's semantics): SGD's momentum buffer
starts as the first gradient, undamped (Jittor: zero, damped from the first step); step() keeps the gradients
until zero_grad() (Jittor: step() zeroes them); AdamW's bias correction counts steps (Jittor: backward calls);
stop-grad parameters are skipped. Not overridable: Jittor gives a parameter the loss does not reach a zero
gradient, so weight decay still moves it (every parameter of these models is reached).
Side by side, both frameworks start from the same weights (built in PyTorch, copied to Jittor) and see the same
batches in the same order; stochastic depth must stay off (--drop-path 0), as its masks are random per framework.
"""

# how a family takes an input size other than 224: as img_size=..., as it comes (all convolutions), or not at all
SIZE_ARGUMENT = {"mixer": "img_size", "smlp": "img_size", "convmlp": None}


@dataclass
class Run:
    """One framework's training: the loss of every step, test accuracy (%) after every epoch, wall time."""

    framework: str
    losses: list[float]
    accuracies: list[float]
    seconds: float
    checkpoint: str
    test_predictions: list[int]  # the final model's class for each test image, in test-split order


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=JITTOR_CONVENTIONS,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=sorted(VARIANTS), metavar="NAME", help="variant to fine-tune")
    p.add_argument("--framework", choices=("torch", "jittor", "both"), default="torch",
                   help="train in one framework, or in both side by side and compare (default %(default)s)")
    p.add_argument("--pretrained", help="checkpoint to start from, any supported format (none: random init); "
                                        "its classifier is replaced when the class count differs")
    p.add_argument("--data", default="digits", help="'digits' (scikit-learn's, upscaled) or an image folder with "
                                                   "one folder per class (a fixed 80/20 train/test split)")
    p.add_argument("--img-size", type=int, default=224, help="input size (default 224, the models' own; ViP needs "
                                                             "224, Mixer a multiple of its patch, sMLPNet of 32)")
    p.add_argument("--epochs", type=int, default=1, help="test accuracy is reported after each (default 1)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="default %(default)s; the last partial training batch is dropped")
    p.add_argument("--steps", type=int, help="stop after this many steps in all")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="adamw", help="default %(default)s")
    p.add_argument("--lr", type=float, default=1e-3, help="default %(default)g")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default %(default)s)")
    p.add_argument("--nesterov", action="store_true", help="SGD with Nesterov momentum")
    p.add_argument("--weight-decay", type=float, default=0.05,
                   help="coupled for SGD, decoupled for AdamW (default %(default)s)")
    p.add_argument("--drop-path", type=float, default=0.0, help="stochastic depth rate (must be 0 with both)")
    p.add_argument("--seed", type=int, default=0, help="seeds the init and the batch order (default %(default)s)")
    p.add_argument("--compare-steps", type=int, default=10, help="report the loss difference over the first N steps")
    p.add_argument("--out", default="finetune_out", help="folder for checkpoints, finetune.json and the plot")
    p.add_argument("--plot", action="store_true", help="save the loss curves as OUT/loss_curves.png")
    args = p.parse_args(argv)
    if args.framework == "both" and args.drop_path:
        p.error("--framework both needs --drop-path 0: each framework draws its own stochastic-depth masks")
    return args


def model_kwargs(name: str, img_size: int, num_classes: int, drop_path: float) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"num_classes": num_classes, "drop_path_rate": drop_path}
    family = variant(name).family
    if img_size != 224 and family not in SIZE_ARGUMENT:
        raise ValueError(f"{name} takes 224x224 input only (its token mixing is tied to that grid)")
    if SIZE_ARGUMENT.get(family):  # always: a pretrained file of another size is resampled to this one
        kwargs[SIZE_ARGUMENT[family]] = img_size
    return kwargs


def batch_plan(n_train: int, batch_size: int, epochs: int, steps: int | None, seed: int) -> list[list[np.ndarray]]:
    """The training indices of every step, per epoch: one seeded shuffle per epoch, shared by both frameworks."""
    rng = np.random.RandomState(seed)
    plan, left = [], steps if steps is not None else float("inf")
    for _ in range(epochs):
        order = rng.permutation(n_train)
        batches = [order[i:i + batch_size] for i in range(0, n_train - batch_size + 1, batch_size)]
        plan.append(batches[:int(min(left, len(batches)))])
        left -= len(plan[-1])
        if left <= 0:
            break
    return plan


class TorchSide:
    """A PyTorch model with torch.optim, stepped on numpy batches."""

    suffix = ".pth"

    def __init__(self, model: Any, args: argparse.Namespace) -> None:
        import torch

        self.torch, self.model = torch, model
        params = list(model.parameters())
        if args.optimizer == "sgd":
            self.opt = torch.optim.SGD(params, args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                                       nesterov=args.nesterov)
        else:
            self.opt = torch.optim.AdamW(params, args.lr, weight_decay=args.weight_decay)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss = self.torch.nn.functional.cross_entropy(self.model(self.torch.from_numpy(x)), self.torch.from_numpy(y))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return float(loss.item())

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(x)).argmax(1).numpy()

    def save(self, path: Path, cfg: dict[str, Any]) -> None:
        self.torch.save(with_cfg(self.model.state_dict(), cfg), path)


class JittorSide:
    """A Jittor model with jittor_support.optim (torch.optim's semantics), stepped on numpy batches."""

    suffix = ".pkl"

    def __init__(self, model: Any, args: argparse.Namespace) -> None:
        from jittor_support.runtime import jt
        from jittor import nn
        from jittor_support.optim import SGD, AdamW

        self.jt, self.nn, self.model = jt, nn, model
        params = model.parameters()
        if args.optimizer == "sgd":
            self.opt = SGD(params, args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                           nesterov=args.nesterov)
        else:
            self.opt = AdamW(params, args.lr, weight_decay=args.weight_decay)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss = self.nn.cross_entropy_loss(self.model(self.jt.array(x)), self.jt.array(y))
        self.opt.zero_grad()
        self.opt.backward(loss)
        self.opt.step()
        return float(loss.item())

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self.jt.no_grad():
            return self.model(self.jt.array(x)).numpy().argmax(1)

    def save(self, path: Path, cfg: dict[str, Any]) -> None:
        self.jt.save(with_cfg({k: v.numpy() for k, v in self.model.state_dict().items()}, cfg), str(path))


def accuracy(side: TorchSide | JittorSide, data: Dataset, batch_size: int) -> tuple[float, np.ndarray]:
    """Test accuracy in % and the predicted classes, in full batches (the last one padded, so Jittor compiles
    no second shape)."""
    side.model.eval()
    test = data.test
    padded = np.concatenate([test, test[:(-len(test)) % batch_size]])
    predictions = np.concatenate([side.predict(data.batch(padded[i:i + batch_size])[0])
                                  for i in range(0, len(padded), batch_size)])[:len(test)]
    side.model.train()
    return float(100.0 * (predictions == data.labels[test]).mean()), predictions


def train(side: TorchSide | JittorSide, framework: str, data: Dataset, plan: list[list[np.ndarray]],
          args: argparse.Namespace, out: Path) -> Run:
    from tqdm import tqdm

    start = time.perf_counter()
    losses, accuracies = [], []
    side.model.train()
    for epoch, batches in enumerate(plan):
        bar = tqdm(batches, desc=f"{framework} epoch {epoch + 1}/{len(plan)}", unit="step", file=sys.stderr,
                   dynamic_ncols=True)
        for indices in bar:
            losses.append(side.step(*data.batch(indices)))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        acc, predictions = accuracy(side, data, args.batch_size)
        accuracies.append(acc)
        print(f"{framework} epoch {epoch + 1}: test accuracy {accuracies[-1]:.2f}% ({len(data.test)} images)",
              file=sys.stderr)
    path = out / f"{args.model}_{framework}{side.suffix}"
    side.save(path, data.pretrained_cfg(args.model, args.img_size))  # the cfg validate.py / predict.py use
    return Run(framework, losses, accuracies, time.perf_counter() - start, str(path),
               [int(p) for p in predictions])


def build_sides(args: argparse.Namespace, kwargs: dict[str, Any]) -> dict[str, TorchSide | JittorSide]:
    """The models to train: each built by its framework, or side by side with PyTorch's weights in both."""
    sides: dict[str, TorchSide | JittorSide] = {}
    state = None
    if args.framework in ("torch", "both"):
        import torch

        import models_pytorch

        torch.manual_seed(args.seed)
        model = models_pytorch.create_model(args.model, pretrained=args.pretrained, **kwargs)
        state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
        sides["torch"] = TorchSide(model, args)
    if args.framework in ("jittor", "both"):
        import models_jittor
        from jittor_support.runtime import jt

        jt.set_global_seed(args.seed)
        if state is None:
            model = models_jittor.create_model(args.model, pretrained=args.pretrained, **kwargs)
        else:
            model = models_jittor.create_model(args.model, **kwargs)
            models_jittor.load_state(model, state)
        sides["jittor"] = JittorSide(model, args)
    return sides


def compare(runs: dict[str, Run], first: int) -> dict[str, float]:
    a, b = np.array(runs["torch"].losses), np.array(runs["jittor"].losses)
    diff = np.abs(a - b)
    return {"compare_steps": min(first, len(diff)), "max_abs_diff_first": float(diff[:first].max()),
            "max_abs_diff_all": float(diff.max()), "steps": len(diff),
            "accuracy_diff": abs(runs["torch"].accuracies[-1] - runs["jittor"].accuracies[-1])}


def plot(runs: dict[str, Run], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = len(runs) == 2
    fig, axes = plt.subplots(1, 2 if both else 1, figsize=(11 if both else 6, 4), squeeze=False)
    for run, style in zip(runs.values(), ("-", "--")):
        axes[0, 0].plot(np.arange(1, len(run.losses) + 1), run.losses, style,
                        label=f"{run.framework} (test acc {run.accuracies[-1]:.2f}%)")
    axes[0, 0].set(xlabel="step", ylabel="training loss", title=title)
    axes[0, 0].legend()
    if both:
        diff = np.abs(np.array(runs["torch"].losses) - np.array(runs["jittor"].losses))
        axes[0, 1].semilogy(np.arange(1, len(diff) + 1), np.maximum(diff, 1e-9))
        axes[0, 1].set(xlabel="step", ylabel="|loss torch - loss jittor|", title="difference (0 drawn at 1e-9)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load(args.data, (args.img_size, args.img_size))
    kwargs = model_kwargs(args.model, args.img_size, len(data.classes), args.drop_path)
    plan = batch_plan(len(data.train), args.batch_size, args.epochs, args.steps, args.seed)
    print(f"{args.model} on {args.data}: {len(data.classes)} classes, {len(data.train)} train / {len(data.test)} "
          f"test images at {args.img_size}x{args.img_size}, {sum(map(len, plan))} steps of {args.batch_size}, "
          f"{args.optimizer} lr {args.lr:g}", file=sys.stderr)
    runs = {fw: train(side, fw, data, plan, args, out) for fw, side in build_sides(args, kwargs).items()}
    result: dict[str, Any] = {"args": vars(args), "runs": {fw: asdict(run) for fw, run in runs.items()}}
    print("| framework | steps | final loss | test accuracy per epoch (%) | seconds | checkpoint |")
    print("|---|---|---|---|---|---|")
    for run in runs.values():
        print(f"| {run.framework} | {len(run.losses)} | {run.losses[-1]:.4f} | "
              f"{', '.join(f'{a:.2f}' for a in run.accuracies)} | {run.seconds:.1f} | {run.checkpoint} |")
    if len(runs) == 2:
        result["comparison"] = c = compare(runs, args.compare_steps)
        print(f"max |loss torch - loss jittor|: {c['max_abs_diff_first']:.2e} over the first {c['compare_steps']} "
              f"steps, {c['max_abs_diff_all']:.2e} over all {c['steps']}; accuracy difference "
              f"{c['accuracy_diff']:.2f} points")
    if args.plot:
        plot(runs, out / "loss_curves.png", f"{args.model} on {args.data}, {args.img_size}px, {args.optimizer}")
    (out / "finetune.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
