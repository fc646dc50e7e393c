#!/usr/bin/env python
"""Does resampling the token-mixing weights help? Train at one size, evaluate and fine-tune at larger ones.

  python tools/resolution_study.py --models mixer_s16 smlpnet_t --train-size 64 --sizes 96 128 --out study_out

For each model: trains from scratch at ``--train-size`` on the digits with tools/finetune.py (PyTorch), then at
each new size (the digits upscaled from their 8x8 originals to that size) builds the model three ways: (a) PI
resampling, (b) interpolation of the weights, (c) the trained weights with a fresh init of every grid-sized tensor;
reports the test accuracy of each as it is, and after ``--finetune-epochs`` of tools/finetune.py at the new size.
Prints a markdown table and writes OUT/study.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np


from mlp_zoo.tools import finetune
from mlp_zoo.model_specs.pretrained_cfg import with_cfg
from mlp_zoo.release_files import resolve_weights
from mlp_zoo.training.data import StreamedData, read_source

METHODS = ("pi", "interp", "fresh")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["mixer_s16", "smlpnet_t"])
    p.add_argument("--data", default="digits", help="'digits' or an image folder (as tools/finetune.py takes)")
    p.add_argument("--train-size", type=int, default=64)
    p.add_argument("--train-epochs", type=int, default=5)
    p.add_argument("--train-steps", type=int, help="stop training after this many steps")
    p.add_argument("--train-lr", type=float, default=1e-3)
    p.add_argument("--sizes", type=int, nargs="+", default=[96, 128])
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--finetune-steps", type=int, help="stop each fine-tune after this many steps (0: none)")
    p.add_argument("--finetune-lr", type=float, default=1e-4)
    p.add_argument("--aug", default="none", help="tools/finetune.py's --aug (default none: a random crop of 8%% of an "
                                                 "8x8 digit leaves no digit)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="resolution_study_out")
    p.add_argument("--pretrained", "--checkpoints", dest="pretrained", nargs="+", default=[], metavar="NAME=WEIGHTS",
                   help="start NAME from these weights (a path, e.g. an earlier study's OUT/NAME_SIZE/NAME_torch.pth, "
                        "or a release name), trained on --data at --train-size, instead of training it from scratch")
    args = p.parse_args(argv)
    bad = [w for w in args.pretrained if "=" not in w or w.split("=", 1)[0] not in args.models]
    if bad:
        p.error(f"--pretrained takes NAME=WEIGHTS with NAME one of --models, not {bad[0]}")
    args.pretrained = dict(w.split("=", 1) for w in args.pretrained)
    return args


def accuracy(model: Any, data: str, size: int, listing: Path, batch: int = 64) -> float:
    """Test accuracy (%) at ``size`` on the split and pixels tools/finetune.py evaluates, normalised as the model's
    ``pretrained_cfg`` says (the cfg it was trained with); a folder's paths are listed into ``listing``."""
    import torch

    source, labels, classes, override = read_source(data, size, listing)
    cfg = {**model.pretrained_cfg, "input_size": (3, size, size), **override}
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y, n in StreamedData(source, labels, classes, cfg, 0, False, 0).test_batches(batch):
            correct += int((model(torch.from_numpy(x)).argmax(1).numpy()[:n] == y[:n]).sum())
            total += n
    return 100.0 * correct / total


def start_model(name: str, trained: str, size: int, method: str, classes: int, seed: int) -> Any:
    """The trained model at ``size``: resampled ('pi', 'interp'), or with its grid-sized tensors freshly drawn."""
    import torch

    import models_pytorch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the resampling warning: expected here
        model = models_pytorch.create_model(name, pretrained=trained, img_size=size,
                                            resample="pi" if method == "fresh" else method)
    if method == "fresh":  # every tensor whose shape the grid sets comes from a fresh model at the new size
        old = {k: v.shape for k, v in models_pytorch.create_model(name, pretrained=trained).state_dict().items()}
        torch.manual_seed(seed)
        own = models_pytorch.create_model(name, num_classes=classes, img_size=size).state_dict()
        model.load_state_dict({k: own[k] if v.shape != old[k] else v for k, v in model.state_dict().items()})
    return model


def study(args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    import models_pytorch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    classes = len(read_source(args.data, args.train_size, out / "image_paths.bin")[2])
    save = lambda: (out / "study.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    common = ["--data", args.data, "--batch-size", str(args.batch_size), "--seed", str(args.seed), "--aug", args.aug]
    trained, base = {}, {}
    for name in args.models:  # phases across the models, so that a cut-short run still compares them
        start = time.perf_counter()
        train_dir = out / f"{name}_{args.train_size}"
        steps = ["--steps", str(args.train_steps)] if args.train_steps else []
        if name in args.pretrained:
            trained[name] = str(resolve_weights(args.pretrained[name], name))
        else:
            finetune.main(["--model", name, "--img-size", str(args.train_size), "--epochs", str(args.train_epochs),
                           "--lr", str(args.train_lr), "--out", str(train_dir), *common, *steps])
            trained[name] = str(train_dir / f"{name}_torch.pth")
        base[name] = accuracy(models_pytorch.create_model(name, pretrained=trained[name]), args.data,
                              args.train_size, out / "image_paths.bin")
        print(f"{name}: trained at {args.train_size} px in {time.perf_counter() - start:.0f} s, "
              f"test accuracy {base[name]:.2f}%", file=sys.stderr)
    for size in args.sizes:  # every start as loaded: the cheap half of the table
        for name in args.models:
            for method in METHODS:
                model = start_model(name, trained[name], size, method, classes, args.seed)
                path = out / f"{name}_{size}_{method}.pth"
                torch.save(with_cfg(model.state_dict(), model.pretrained_cfg), path)  # the cfg it was trained with
                rows.append(dict(model=name, train_size=args.train_size, train_accuracy=base[name], size=size,
                                 method=method, accuracy=accuracy(model, args.data, size, out / "image_paths.bin"),
                                 finetuned_accuracy=None,
                                 start=str(path)))
                print(f"{name} {size} px {method}: {rows[-1]['accuracy']:.2f}%", file=sys.stderr)
                save()
    steps = ["--steps", str(args.finetune_steps)] if args.finetune_steps else []
    for row in rows if args.finetune_steps != 0 else []:
        result = finetune.main(["--model", row["model"], "--img-size", str(row["size"]), "--pretrained",
                                row["start"], "--epochs", str(args.finetune_epochs), "--lr", str(args.finetune_lr),
                                "--out", str(out / f"ft_{row['model']}_{row['size']}_{row['method']}"), *common,
                                *steps])
        row["finetuned_accuracy"] = result["runs"]["torch"]["accuracies"][-1]
        print(f"{row['model']} {row['size']} px {row['method']}: {row['finetuned_accuracy']:.2f}% after "
              f"fine-tuning", file=sys.stderr)
        save()
    return rows


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    label = {"pi": "(a) PI resampling", "interp": "(b) interpolation", "fresh": "(c) fresh token mixing"}
    tuned = f"{args.finetune_steps} steps" if args.finetune_steps else f"{args.finetune_epochs} epoch(s)"
    lines = [f"| model (test acc. at {args.train_size} px) | size | start | accuracy as loaded (%) | "
             f"after {tuned} at the size (%) |", "|---|---|---|---|---|"]
    for r in rows:
        tuned = "not run" if r["finetuned_accuracy"] is None else f"{r['finetuned_accuracy']:.2f}"
        lines.append(f"| {r['model']} ({r['train_accuracy']:.2f}%) | {r['size']} | {label[r['method']]} | "
                     f"{r['accuracy']:.2f} | {tuned} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from weights_convert import CheckpointError

    args = parse_args(argv)
    try:
        rows = study(args)
    except CheckpointError as e:  # weights named by --pretrained that cannot be fetched or read
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table(rows, args))
    (Path(args.out) / "table.md").write_text(table(rows, args) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
