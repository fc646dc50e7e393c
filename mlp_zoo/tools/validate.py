#!/usr/bin/env python
"""Measure top-1 / top-5 of a model on an ImageNet-style folder, in PyTorch, Jittor or both, with the
preprocessing of the release its weights come from (``pretrained_cfg``; any key can be overridden).

    python tools/validate.py /data/imagenet/val --pretrained smlp_s.pth --framework both --results-file r.json

The folder holds one sub-folder per class (ImageFolder order: sorted names), or is flat with ``--labels-file``
(``name label`` per line). Class folders named like the model's classes (e.g. ImageNet synsets) are mapped to
the model's class indices; otherwise folder i is class i. Images are decoded and prepared in ``--workers``
processes through a bounded queue, so memory does not grow with the folder. A bad image is named on one line,
counted (``skipped``) and left out; ``--strict`` makes it an error (exit status 2).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


from mlp_zoo.tools.classify import (BadImages, Models, Timer, ToolError, add_model_args, batch_for, batches,
                            check_args, check_writable, escaped, load_models, names_of, prepared, progress,
                            run_batch, topk, write_atomic_text)

RESULT_KEYS = ("model", "framework", "top1", "top1_err", "top5", "top5_err", "param_count", "img_size", "crop_pct",
               "interpolation", "images", "skipped", "images_per_s", "checkpoint")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="image folder: one sub-folder per class, or flat with --labels-file")
    p.add_argument("--labels-file", help="for a flat folder: 'name label' per line (label: index or class name)")
    add_model_args(p)
    p.add_argument("--limit", type=int, help="only the first N images (in listing order)")
    p.add_argument("--results-file", help="one row per model and framework, .json or .csv (timm's keys)")
    p.add_argument("--predictions-file", help="per image: path, label, top-5 of each framework (.csv or .json)")
    args = p.parse_args(argv)
    check_args(p, args)
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be >= 1")
    for path in (args.results_file, args.predictions_file):
        if path and not path.lower().endswith((".json", ".csv")):
            p.error(f"{path}: use a .json or .csv name")
    return args


def model_labels(classes: list[str], models: Models, names: list[str]) -> list[int]:
    """The model's class index of each folder class: by name where every folder class is one of the model's
    (its synsets or its own class names), else by position."""
    from mlp_zoo.image_data import synsets

    label_set = models.cfg.get("label_names")
    known = list(synsets(label_set)) if isinstance(label_set, str) else names
    index = {c: i for i, c in enumerate(known)}
    if all(c in index for c in classes):
        return [index[c] for c in classes]
    if len(classes) > len(names):
        raise ToolError(f"the folder has {len(classes)} classes, the model {len(names)}, and its class names "
                        f"are not the model's (e.g. {escaped(classes[0])})")
    return list(range(len(classes)))


def rows_as(path: str, rows: list[dict[str, Any]]) -> str:
    if path.lower().endswith(".json"):
        return json.dumps(rows, indent=1) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["path"])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()})
    return out.getvalue()


def validate(args: argparse.Namespace) -> dict[str, Any]:
    from mlp_zoo.image_data import FolderError, list_folder

    check_writable(args.results_file)
    check_writable(args.predictions_file)
    models = load_models(args)
    names = names_of(models.cfg)
    label_set = models.cfg.get("label_names")
    try:
        from mlp_zoo.image_data import synsets

        classes = list(synsets(label_set)) if isinstance(label_set, str) else names
        listing = list_folder(args.data, args.labels_file, classes if args.labels_file else None)
    except FolderError as e:
        raise ToolError(str(e)) from None
    to_model = model_labels(listing.classes, models, names) if not args.labels_file else None
    items = listing.items[:args.limit] if args.limit else listing.items
    paths = [p for p, _ in items]
    labels = np.array([to_model[y] if to_model else y for _, y in items], dtype=np.int64)
    frameworks = list(models.frameworks)
    print(f"{models.name} ({args.checkpoint or 'random init'}) on {escaped(args.data)}: {len(items)} images, "
          f"{len(listing.classes)} classes; cfg {json.dumps(models.cfg, default=list)[:400]}", file=sys.stderr)

    bad = BadImages(args.strict)
    timer = Timer()
    correct = {f: np.zeros(2, dtype=np.int64) for f in frameworks}
    agree, max_logit_diff, done = 0, 0.0, 0
    predictions: list[dict[str, Any]] = []
    bar = progress(len(items), f"validate {'+'.join(frameworks)}")
    size = batch_for(args.batch_size, len(paths))
    for indices, x in batches(prepared(paths, models.cfg, args), size, bad):
        logits = run_batch(models, x, size, timer)
        y = labels[indices]
        top5 = {f: topk(logits[f], 5) for f in frameworks}
        for f in frameworks:
            correct[f] += [(top5[f][:, 0] == y).sum(), (top5[f] == y[:, None]).any(axis=1).sum()]
        if len(frameworks) == 2:
            agree += int((top5["torch"][:, 0] == top5["jittor"][:, 0]).sum())
            max_logit_diff = max(max_logit_diff, float(np.abs(logits["torch"] - logits["jittor"]).max()))
        if args.predictions_file:
            for row, i in enumerate(indices):
                entry: dict[str, Any] = {"path": paths[i], "label": int(y[row])}
                entry.update({f"top5_{f}": [int(c) for c in top5[f][row]] for f in frameworks})
                predictions.append(entry)
        done += len(indices)
        bar.update(len(indices))
    bar.close()
    if done == 0:
        raise ToolError(f"{escaped(args.data)}: none of its {len(items)} images could be read", status=2)
    cfg = models.cfg
    rows = []
    for f in frameworks:
        top1, top5 = (100.0 * correct[f] / done).tolist()
        rows.append({"model": models.name, "framework": f, "top1": round(top1, 3), "top1_err": round(100 - top1, 3),
                     "top5": round(top5, 3), "top5_err": round(100 - top5, 3), "param_count": models.param_count,
                     "img_size": int(cfg["input_size"][-1]), "crop_pct": cfg["crop_pct"],
                     "interpolation": cfg["interpolation"], "images": done, "skipped": bad.count,
                     "images_per_s": round(timer.images_per_s(f, done), 2), "checkpoint": args.checkpoint or ""})
    result: dict[str, Any] = {"results": rows, "cfg": {k: list(v) if isinstance(v, tuple) else v
                                                       for k, v in cfg.items() if k != "label_names"}}
    if len(frameworks) == 2:
        result["comparison"] = {"top1_agreement": round(100.0 * agree / done, 3), "max_abs_logit_diff": max_logit_diff,
                                **{f"top1_{f}": r["top1"] for f, r in zip(frameworks, rows)}}
    if args.results_file:
        write_atomic_text(args.results_file, rows_as(args.results_file, rows))
    if args.predictions_file:
        write_atomic_text(args.predictions_file, rows_as(args.predictions_file, predictions))
    return result


def report(result: dict[str, Any]) -> None:
    print("| model | framework | top-1 | top-5 | images | skipped | images/s | params |")
    print("|---|---|---|---|---|---|---|---|")
    for r in result["results"]:
        print(f"| {r['model']} | {r['framework']} | {r['top1']:.3f} | {r['top5']:.3f} | {r['images']} | "
              f"{r['skipped']} | {r['images_per_s']:.1f} | {r['param_count']:,} |")
    if "comparison" in result:
        c = result["comparison"]
        print(f"top-1 agreement torch/jittor: {c['top1_agreement']:.3f}% of images; max |logit difference| "
              f"{c['max_abs_logit_diff']:.2e}")
    print(f"skipped: {result['results'][0]['skipped']}")
    print(f"cfg: {json.dumps(result['cfg'])}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = validate(args)
    except ToolError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.status
    report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
