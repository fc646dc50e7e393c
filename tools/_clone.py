"""Lets a clone run ``python tools/NAME.py ...`` without installing: the same as ``mlp-zoo NAME ...``.

Only the clone has this folder; an installed zoo has the ``mlp-zoo`` command instead."""
from __future__ import annotations

import sys
from pathlib import Path


def run(command: str) -> None:
    """Runs subcommand ``command`` of ``mlp-zoo`` with this script's arguments, the clone's packages first."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from mlp_zoo.cli import main

    sys.exit(main([command, *sys.argv[1:]]))
