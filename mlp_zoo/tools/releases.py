#!/usr/bin/env python
"""The published releases: list them with their evaluation cfg and whether each is cached, or download them
ahead of time (for a machine without internet: copy the cache, or point MLPZOO_CACHE at it).

  mlp-zoo releases list [--model NAME]
  mlp-zoo releases download smlpnet_s.spach_in1k convmlp_s   # a release, or a variant's default release
  mlp-zoo releases download --all

The cache is $MLPZOO_CACHE, else $XDG_CACHE_HOME/mlp-zoo, else ~/.cache/mlp-zoo; MLPZOO_MIRROR=<base URL> fetches
each release as <base URL>/<file> instead (docs/releases.md).
"""
from __future__ import annotations

import argparse
import sys

from mlp_zoo.model_specs import PUBLISHED, VARIANTS, pretrained_cfg, release
from mlp_zoo.release_files import cache_dir, cached_path, fetch
from weights_convert import CheckpointError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, metavar="list|download")
    listing = sub.add_parser("list", help="every release, its cfg, and whether it is cached")
    listing.add_argument("--model", choices=sorted(VARIANTS), metavar="NAME", help="only this variant's releases")
    get = sub.add_parser("download", help="fetch releases into the cache; prints where each file went")
    get.add_argument("names", nargs="*", metavar="NAME", help="release names (variant.tag) or variant names "
                                                              "(their default release)")
    get.add_argument("--all", action="store_true", help="every release")
    args = p.parse_args(argv)
    if args.action == "download" and bool(args.names) == args.all:
        get.error("give release names or --all (not both)")
    return args


def listed(model: str | None) -> str:
    rows = [("release", "default", "input", "crop_pct", "interpolation", "mean", "classes", "file", "cached")]
    seen: set[str] = set()
    for r in PUBLISHED.values():
        if model and r.variant != model:
            continue
        cfg = pretrained_cfg(r.variant, r.cfg)
        path = cached_path(r)
        rows.append((r.name, "" if r.variant in seen else "yes", str(cfg["input_size"][-1]), f"{cfg['crop_pct']:g}",
                     f"{cfg['interpolation']}{' squash' if cfg['crop_mode'] == 'squash' else ''}",
                     ",".join(f"{m:g}" for m in cfg["mean"]), str(cfg["num_classes"]), r.file,
                     str(path) if path.is_file() else "no"))
        seen.add(r.variant)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines + [f"cache: {cache_dir()}"])


def download(names: list[str]) -> int:
    failed = 0
    for name in names:
        try:
            r = release(name)
            path = fetch(r)
            print(f"{r.name}: {path}")
        except (CheckpointError, ValueError, KeyError) as e:
            print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.action == "list":
        print(listed(args.model))
        return 0
    return download(list(PUBLISHED) if args.all else args.names)


if __name__ == "__main__":
    sys.exit(main())
