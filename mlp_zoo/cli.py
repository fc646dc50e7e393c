"""The ``mlp-zoo`` command: one subcommand per tool, each the ``main(argv)`` of a module in ``mlp_zoo.tools``.

From a clone, ``python tools/NAME.py ...`` runs the same (``tools/_clone.py``)."""
from __future__ import annotations

import importlib
import sys

# subcommand -> (module in mlp_zoo.tools, one line for --help)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("convert", "move a checkpoint between PyTorch and Jittor (any supported format in, strict checks)"),
    "predict": ("predict", "the most likely classes of photos, in one or both frameworks"),
    "validate": ("validate", "top-1/top-5 of a labelled image folder"),
    "finetune": ("finetune", "fine-tune or train on an image folder (torchrun / mpirun for several processes)"),
    "compare": ("compare", "parameters, MACs, latency and agreement of the two frameworks, side by side"),
    "resolution-study": ("resolution_study", "train at one size, evaluate and fine-tune at others"),
    "crosscheck": ("crosscheck", "where the two frameworks part: every module's output (and gradient) compared, named"),
    "ablation-study": ("ablation_study", "train sMLPNet's ablation settings with one recipe and compare them"),
    "benchmark": ("benchmark", "a per-op profile of one model in each framework"),
    "releases": ("releases", "the published releases by name: list them (cached or not), download them ahead of time"),
    "demo": ("demo", "the main job end to end: a PyTorch checkpoint converted, loaded and compared in Jittor"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: mlp-zoo SUBCOMMAND [ARGS ...]   (mlp-zoo SUBCOMMAND --help for its options)", "", "subcommands:"]
    lines += [f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"mlp-zoo: unknown subcommand {argv[0]!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"mlp_zoo.tools.{COMMANDS[argv[0]][0]}")
    sys.argv[0] = f"mlp-zoo {argv[0]}"  # argparse's prog in usage lines and errors
    rc = module.main(argv[1:])
    return rc if isinstance(rc, int) else 0
