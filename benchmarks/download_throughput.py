#!/usr/bin/env python
"""Download throughput of the zoo's fetch against curl on the same local file, and what pretrained=True costs
over a path once the file is cached.

  .venv/bin/python benchmarks/download_throughput.py --mb 200 --rounds 5 --out benchmarks/download_throughput.json

A ``--mb`` MB file is served by ``python -m http.server`` in its own process on 127.0.0.1; each round downloads it
with ``curl -o`` and with ``mlp_zoo.http_download.download`` (without a hash, as for most releases, and with its
SHA-256 verified), alternating the order, into the same folder. Then ``create_model("convmlp_s", pretrained=True)`` (a stand-in release in the cache) is timed
against ``create_model("convmlp_s", pretrained=<its path>)``, interleaved. Prints medians side by side.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def wait_for(port: int) -> None:
    import socket

    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the local server did not start")


def throughput(folder: Path, mb: int, rounds: int) -> dict[str, list[float]]:
    from mlp_zoo.http_download import download

    body = folder / "served" / "w.bin"
    body.parent.mkdir()
    with open(body, "wb") as f:
        for _ in range(mb):
            f.write(os.urandom(1 << 20))
    sha = hashlib.sha256(body.read_bytes()).hexdigest()
    port = 8000 + os.getpid() % 1000
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                               str(body.parent)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(port)
        url = f"http://127.0.0.1:{port}/w.bin"
        times: dict[str, list[float]] = {"curl": [], "mlp_zoo": [], "mlp_zoo_sha256": []}
        for i in range(rounds):
            for tool in (list(times) if i % 2 == 0 else list(times)[::-1]):
                dest = folder / f"{tool}.bin"
                dest.unlink(missing_ok=True)
                start = time.perf_counter()
                if tool == "curl":
                    subprocess.run(["curl", "-sf", "-o", str(dest), url], check=True)
                else:  # a release with no published hash (most), and one with its SHA-256 verified
                    download([url], dest, sha256=sha if tool == "mlp_zoo_sha256" else None, progress=False)
                times[tool].append(time.perf_counter() - start)
                assert dest.stat().st_size == mb << 20
                dest.unlink()
        return times
    finally:
        server.terminate()
        server.wait()


def name_overhead(folder: Path, rounds: int) -> dict[str, list[float]]:
    import torch

    import models_pytorch
    from mlp_zoo.model_specs import PUBLISHED
    from mlp_zoo.release_files import cached_path, resolve_weights

    os.environ["MLPZOO_CACHE"] = str(folder / "cache")
    path = cached_path(PUBLISHED["convmlp_s.in1k"])
    path.parent.mkdir(parents=True)
    torch.save(models_pytorch.create_model("convmlp_s").state_dict(), path)
    times: dict[str, list[float]] = {"path": [], "pretrained=True": []}
    for i in range(rounds):
        for how in (("path", "pretrained=True") if i % 2 == 0 else ("pretrained=True", "path")):
            start = time.perf_counter()
            models_pytorch.create_model("convmlp_s", pretrained=True if how == "pretrained=True" else path)
            times[how].append(time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(1000):
        resolve_weights(True, "convmlp_s")
    times["resolve"] = [(time.perf_counter() - start) / 1000]
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mb", type=int, default=200)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        net = throughput(Path(tmp), args.mb, args.rounds)
        load = name_overhead(Path(tmp), args.rounds)
    med = {k: statistics.median(v) for k, v in {**net, **load}.items()}
    print(f"download of {args.mb} MiB from 127.0.0.1, median of {args.rounds}:")
    for tool in ("curl", "mlp_zoo", "mlp_zoo_sha256"):
        print(f"  {tool:14s} {med[tool]:6.2f} s  {args.mb * 1.048576 / med[tool]:7.1f} MB/s  "
              f"time / curl's {med[tool] / med['curl']:.3f}")
    print(f"create_model('convmlp_s') once cached, median of {args.rounds}:")
    for how in ("path", "pretrained=True"):
        print(f"  {how:16s} {med[how] * 1000:7.1f} ms")
    print(f"  difference {(med['pretrained=True'] - med['path']) * 1000:+.1f} ms; the name's resolution alone "
          f"(resolve_weights, a cached file): {med['resolve'] * 1e6:.0f} us")
    if args.out:
        args.out.write_text(json.dumps({"mb": args.mb, "rounds": args.rounds, "seconds": {**net, **load},
                                        "median_s": med}, indent=1) + "\n")


if __name__ == "__main__":
    main()
