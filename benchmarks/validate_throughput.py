#!/usr/bin/env python
"""tools/validate.py on a folder of real-photo-sized JPEGs: images/s per framework with --workers 0/1/2, and peak
memory (the tool's process and its largest worker) at two folder sizes, which must not grow with the count.

    python benchmarks/validate_throughput.py --images 2000 --small 500 --out benchmarks/validate_throughput.json

Peak memory of the worker processes is read as RUSAGE_CHILDREN, which on Linux also counts what a worker's fork
copied from the parent before its exec: an upper bound.

The JPEGs are the photos that ship in scikit-image's wheel (astronaut, chelsea, coffee, rocket, motorcycle;
300x451 to 600x400 pixels), each slightly rotated so that no two files are the same, in two class folders.
Each run is a fresh process (tools/validate.py's main, peak memory from the kernel's high-water marks).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png"]
RUN = """
import json, resource, sys
sys.path.insert(0, {root!r})
from mlp_zoo.tools import validate
status = validate.main({argv!r})
print("PEAK " + json.dumps({{"status": status, "self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                            "workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""


def make_folder(root: Path, count: int) -> Path:
    import skimage
    from PIL import Image

    data = Path(skimage.__file__).parent / "data"
    photos = [Image.open(data / p).convert("RGB") for p in PHOTOS]
    for i in range(count):
        target = root / f"class{i % 2}" / f"{i:05d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        photos[i % len(photos)].rotate(i % 11 - 5).save(target, quality=90)
    return root


def run(folder: Path, model: str, framework: str, workers: int, batch: int, limit: int | None) -> dict:
    argv = [str(folder), "--model", model, "--framework", framework, "--workers", str(workers),
            "--batch-size", str(batch)]
    argv += ["--limit", str(limit)] if limit else []
    done = subprocess.run([sys.executable, "-c", RUN.format(root=str(ROOT), argv=argv)], capture_output=True,
                          text=True)
    peak = next((json.loads(line[5:]) for line in done.stdout.splitlines() if line.startswith("PEAK ")), None)
    row = next((line for line in done.stdout.splitlines() if line.startswith(f"| {model} | {framework}")), None)
    if peak is None or row is None:
        raise SystemExit(f"validate failed: {done.stderr[-2000:]}")
    cells = [c.strip() for c in row.strip("|").split("|")]
    return {"framework": framework, "workers": workers, "images": int(cells[4]), "images_per_s": float(cells[6]),
            "self_mb": round(peak["self_mb"], 1), "workers_mb": round(peak["workers_mb"], 1),
            "command": "python tools/validate.py FOLDER " + " ".join(argv[1:])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--small", type=int, default=500, help="the smaller folder for the memory comparison")
    p.add_argument("--model", default="mixer_s32")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--frameworks", nargs="+", default=["torch", "jittor"])
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--throughput-limit", type=int, help="images per throughput run (default: all)")
    p.add_argument("--memory-frameworks", nargs="+", help="frameworks of the memory runs (default: --frameworks)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    results: dict = {"load_average_start": os.getloadavg()[0], "throughput": [], "memory": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "photos", args.images)
        for framework in args.frameworks:
            for workers in args.workers:
                r = run(folder, args.model, framework, workers, args.batch_size, args.throughput_limit)
                print(json.dumps(r), flush=True)
                results["throughput"].append(r)
            for count in (args.small, args.images) if framework in (args.memory_frameworks or args.frameworks) else ():
                r = run(folder, args.model, framework, max(args.workers), args.batch_size, count)
                print(json.dumps(r), flush=True)
                results["memory"].append(r)
    results["load_average_end"] = os.getloadavg()[0]
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
