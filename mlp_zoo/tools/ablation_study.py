#!/usr/bin/env python
"""What does each part of the sMLPNet block buy? Train ablation settings with one recipe and compare them.

  python tools/ablation_study.py --settings default fusion=sum local=false token_mixing=dense --img-size 64 \\
      --epochs 3 --seeds 0 1 --out ablation_out

Each setting is ``default`` (the published block) or words ``KEY=VALUE`` joined by ``+`` (``fusion=sum+identity=false``;
keys and values as ``SMLPOptions``: fusion, identity, axial, local, sparse_stages as one 1/0 per stage,
token_mixing). Every setting trains from scratch with tools/finetune.py's recipe on ``--data`` (the built-in digits
or an image folder), in ``--framework`` torch or jittor, once per seed (the same seeds for all: the same batch order
and init seed). Prints a table (parameters, MACs per image,
images/s over the run (training steps, their images over the wall time, test passes included), test accuracy after each
epoch, mean over the seeds) and writes OUT/ablation_study.json, .csv and
the plot OUT/ablation_study.png (test accuracy per epoch).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mlp_zoo.model_specs import variant
from mlp_zoo.model_specs.smlp import parse_options

PROG = "mlp-zoo ablation-study"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smlpnet_t", help="an sMLPNet variant (default %(default)s)")
    p.add_argument("--settings", nargs="+", default=["default", "fusion=sum", "local=false", "token_mixing=dense"],
                   help="'default' or KEY=VALUE words joined by '+' (default: %(default)s)")
    p.add_argument("--data", default="digits", help="'digits' or an image folder (as tools/finetune.py takes)")
    p.add_argument("--framework", choices=("torch", "jittor"), default="torch")
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps", type=int, help="stop each run after this many steps")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--aug", default="none", help="tools/finetune.py's --aug (default none: a random crop of 8%% of an "
                                                 "8x8 digit leaves no digit)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out", default="ablation_out", help="folder for the runs, the table, JSON, CSV and plot")
    args = p.parse_args(argv)
    try:
        if variant(args.model).family != "smlp":
            p.error(f"--model {args.model}: not an sMLPNet variant")
    except KeyError as e:
        p.error(f"--model {e.args[0]}")
    args.options = {}
    for setting in args.settings:
        try:
            args.options[setting] = {} if setting == "default" else parse_options(setting.split("+"))
        except ValueError as e:
            p.error(f"--settings {e}")
    if len(set(args.settings)) != len(args.settings):
        p.error("--settings: a setting is given twice")
    if args.img_size <= 0 or args.img_size % 32:
        p.error(f"--img-size {args.img_size}: sMLPNet needs a multiple of 32")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        p.error(f"--out {args.out}: exists and is not a folder")
    return args


def cost(args: argparse.Namespace, options: dict[str, Any], classes: int) -> tuple[int, int]:
    """(parameters, MACs per image) of a setting, counted from the model in the study's framework."""
    from mlp_zoo.tools.macs import jittor_macs, torch_macs

    kwargs = dict(img_size=args.img_size, num_classes=classes, **options)
    size = (args.img_size, args.img_size)
    if args.framework == "torch":
        import torch

        import models_pytorch

        with torch.device("meta"):
            params = sum(p.numel() for p in models_pytorch.create_model(args.model, **kwargs).parameters())
        return params, torch_macs(args.model, size, **kwargs)
    import models_jittor

    model = models_jittor.create_model(args.model, **kwargs)
    params = sum(int(np.prod(v.shape)) for v in model.parameters() if not v.is_stop_grad())
    return params, jittor_macs(args.model, size, **kwargs)


def run_setting(args: argparse.Namespace, setting: str, seed: int) -> dict[str, Any]:
    """One training run of ``setting`` with ``seed`` through tools/finetune.py."""
    from mlp_zoo.tools import finetune

    name = setting.replace("=", "-").replace("+", "_")
    steps = ["--steps", str(args.steps)] if args.steps else []
    options = [f"--model-option={w}" for w in ([] if setting == "default" else setting.split("+"))]
    result = finetune.main(["--model", args.model, "--framework", args.framework, "--data", args.data,
                            "--img-size", str(args.img_size), "--epochs", str(args.epochs), "--lr", str(args.lr),
                            "--batch-size", str(args.batch_size), "--aug", args.aug, "--seed", str(seed),
                            "--log-every", "1000000", "--out", str(Path(args.out) / f"{name}_seed{seed}"),
                            *options, *steps])
    run = result["runs"][args.framework]
    return {"seed": seed, "accuracies": run["accuracies"], "final_loss": run["losses"][-1],
            "images_per_s": len(run["losses"]) * args.batch_size / run["seconds"], "seconds": run["seconds"]}


def study(args: argparse.Namespace) -> list[dict[str, Any]]:
    from mlp_zoo.training.data import read_source

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    classes = len(read_source(args.data, args.img_size, out / "image_paths.bin")[2])
    rows = []
    for setting in args.settings:
        params, macs = cost(args, args.options[setting], classes)
        rows.append({"setting": setting, "options": args.options[setting], "params": params, "macs": macs,
                     "runs": []})
    for seed in args.seeds:  # seed by seed across the settings: a cut-short run still compares them all
        for row in rows:
            row["runs"].append(run_setting(args, row["setting"], seed))
            acc = row["runs"][-1]["accuracies"]
            print(f"{row['setting']} seed {seed}: test accuracy per epoch {', '.join(f'{a:.2f}' for a in acc)}",
                  file=sys.stderr)
            write_json(args, rows)
    return rows


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """Means (and the spread) over the seeds run so far."""
    acc = np.array([r["accuracies"] for r in row["runs"]])
    return {"accuracy_mean": acc.mean(0).tolist(), "accuracy_min": acc.min(0).tolist(),
            "accuracy_max": acc.max(0).tolist(),
            "images_per_s": float(np.mean([r["images_per_s"] for r in row["runs"]]))}


def write_json(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """OUT/ablation_study.json, replaced atomically (a kill leaves the previous complete file)."""
    path = Path(args.out) / "ablation_study.json"
    data = {"args": {k: v for k, v in vars(args).items() if k != "options"},
            "rows": [{**row, **(summary(row) if row["runs"] else {})} for row in rows]}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def table(args: argparse.Namespace, rows: list[dict[str, Any]]) -> str:
    lines = [f"| setting | params | MACs (M) | images/s (run) | test accuracy per epoch, mean of seeds "
             f"{', '.join(map(str, args.seeds))} (%) | final: min - max (%) |", "|---|---|---|---|---|---|"]
    for row in rows:
        s = summary(row)
        lines.append(f"| {row['setting']} | {row['params']:,} | {row['macs'] / 1e6:.1f} | {s['images_per_s']:.0f} | "
                     f"{', '.join(f'{a:.2f}' for a in s['accuracy_mean'])} | "
                     f"{s['accuracy_min'][-1]:.2f} - {s['accuracy_max'][-1]:.2f} |")
    return "\n".join(lines)


def write_csv(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    path = Path(args.out) / "ablation_study.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["setting", "params", "macs", "seed", "epoch", "test_accuracy", "images_per_s"])
        for row in rows:
            for run in row["runs"]:
                for epoch, acc in enumerate(run["accuracies"], 1):
                    w.writerow([row["setting"], row["params"], row["macs"], run["seed"], epoch, f"{acc:.4f}",
                                f"{run['images_per_s']:.2f}"])


def plot(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        s = summary(row)
        epochs = np.arange(1, len(s["accuracy_mean"]) + 1)
        line, = ax.plot(epochs, s["accuracy_mean"], "o-", label=f"{row['setting']} ({row['params'] / 1e6:.2f}M, "
                                                                f"{row['macs'] / 1e6:.0f} MMACs)")
        ax.fill_between(epochs, s["accuracy_min"], s["accuracy_max"], color=line.get_color(), alpha=0.15)
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", xticks=epochs,
           title=f"{args.model} ablations on {args.data}, {args.img_size} px, {args.framework}, seeds "
                 f"{', '.join(map(str, args.seeds))}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(Path(args.out) / "ablation_study.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = study(args)
    print(table(args, rows))
    (Path(args.out) / "table.md").write_text(table(args, rows) + "\n")
    write_csv(args, rows)
    plot(args, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
