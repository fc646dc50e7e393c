#!/usr/bin/env python
"""Classify images: the top-k classes with probabilities and names, in PyTorch, Jittor or both, with the
preprocessing of the release its weights come from (``pretrained_cfg``; any key can be overridden).

    python tools/predict.py photo.jpg photos/ 'more/*.png' --pretrained mixer_b16.npz --framework both

Inputs are files, folders (every image below, sorted) or glob patterns. ``--framework both`` shows each
framework's top-k, whether they agree, and the largest |probability difference| over all classes. A bad image is
named on one line, counted and left out; ``--strict`` makes it an error (exit status 2).
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np


from mlp_zoo.image_data.folder import is_image_name, walk_images
from mlp_zoo.tools.classify import (BadImages, Timer, ToolError, add_model_args, batch_for, batches, check_args,
                            check_writable, escaped, load_models, names_of, prepared, progress, run_batch, softmax,
                            topk, write_atomic_text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    add_model_args(p)
    p.add_argument("--topk", type=int, default=5, help="classes shown per image (default %(default)s)")
    p.add_argument("--csv", metavar="FILE", help="also write the predictions as CSV to FILE")
    p.add_argument("--json", metavar="FILE", help="also write the predictions (and the cfg used) as JSON to FILE")
    p.add_argument("--output", metavar="FILE", help="write the table to FILE instead of stdout")
    args = p.parse_args(argv)
    check_args(p, args)
    if args.topk < 1:
        p.error("--topk must be >= 1")
    return args


def expand(inputs: list[str]) -> list[str]:
    """Files as given, folders as every image below them, patterns as their sorted matches; each path once."""
    paths: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = list(walk_images(item))
        elif os.path.lexists(item):
            found = [item]
        elif glob.has_magic(item):
            found = [p for p in sorted(glob.glob(item, recursive=True))
                     if not os.path.isdir(p) and (is_image_name(p) or os.path.isfile(p))]  # a folder is no image
        else:
            found = [item]  # reported as a bad image (no such file), like one deleted during the run
        if not found:
            print(f"warning: {escaped(item)} matches no image", file=sys.stderr)
        paths += found
    seen: set[str] = set()
    return [p for p in paths if not (p in seen or seen.add(p))]


def predict(args: argparse.Namespace) -> dict[str, Any]:
    for path in (args.output, args.csv, args.json):
        check_writable(path)
    paths = expand(args.inputs)
    if not paths:
        raise ToolError("no images given")
    models = load_models(args)
    names = names_of(models.cfg)
    frameworks = list(models.frameworks)
    bad = BadImages(args.strict)
    timer = Timer()
    rows: list[dict[str, Any]] = []
    bar = progress(len(paths), f"predict {'+'.join(frameworks)}")
    size = batch_for(args.batch_size, len(paths))
    for indices, x in batches(prepared(paths, models.cfg, args), size, bad):
        probs = {f: softmax(logits) for f, logits in run_batch(models, x, size, timer).items()}
        best = {f: topk(p, args.topk) for f, p in probs.items()}
        for row, i in enumerate(indices):
            entry: dict[str, Any] = {"path": paths[i]}
            for f in frameworks:
                entry[f] = [{"class": int(c), "name": names[c], "prob": float(probs[f][row, c])} for c in best[f][row]]
            if len(frameworks) == 2:
                entry["agree"] = bool(np.array_equal(best["torch"][row], best["jittor"][row]))
                entry["max_abs_prob_diff"] = float(np.abs(probs["torch"][row] - probs["jittor"][row]).max())
            rows.append(entry)
        bar.update(len(indices))
    bar.close()
    if not rows:  # nothing to show: an error, not an empty result with exit status 0
        raise ToolError(f"none of the {len(paths)} input image(s) could be read ({bad.count} bad)", status=2)
    return {"model": models.name, "frameworks": frameworks, "predictions": rows, "skipped": bad.count,
            "cfg": {k: list(v) if isinstance(v, tuple) else v for k, v in models.cfg.items() if k != "label_names"}}


def formatted(result: dict[str, Any], form: str) -> str:
    """The predictions as ``form``: "table", "csv" or "json"."""
    frameworks = result["frameworks"]
    if form == "json":
        return json.dumps(result, indent=1) + "\n"
    out = io.StringIO()
    if form == "csv":
        writer = csv.writer(out)
        writer.writerow(["path", "framework", "rank", "class", "name", "prob"])
        for entry in result["predictions"]:
            for f in frameworks:
                for rank, p in enumerate(entry[f], 1):
                    writer.writerow([entry["path"], f, rank, p["class"], p["name"], f"{p['prob']:.6f}"])
        return out.getvalue()
    for entry in result["predictions"]:
        head = escaped(entry["path"])
        if "agree" in entry:
            head += (f"  (top-{len(entry['torch'])} {'agree' if entry['agree'] else 'DIFFER'}, max |prob diff| "
                     f"{entry['max_abs_prob_diff']:.1e})")
        out.write(head + "\n")
        for rank in range(len(entry[frameworks[0]])):
            cells = [f"{f}: {entry[f][rank]['prob']:7.2%} {entry[f][rank]['class']:>5} "
                     f"{escaped(entry[f][rank]['name'])[:40]:<40}" for f in frameworks]
            out.write(f"  {rank + 1}. " + " | ".join(cells).rstrip() + "\n")
    out.write(f"skipped: {result['skipped']}\n")
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = predict(args)
        for path, form in ((args.csv, "csv"), (args.json, "json")):
            if path:
                write_atomic_text(path, formatted(result, form))
        text = formatted(result, "table")
        if args.output:
            write_atomic_text(args.output, text)
        else:
            sys.stdout.write(text)
    except ToolError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.status
    return 0


if __name__ == "__main__":
    sys.exit(main())
