"""Small helpers the tests share: writing checkpoints and running the converter."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
CONVERT = ROOT / "tools" / "convert.py"
MANIFESTS = ROOT / "tests" / "data" / "manifests"  # the official models' keys and shapes, see its README


def save_torch(path: Path, state: dict[str, np.ndarray], wrap: str | None = None, **extra) -> Path:
    tensors = {k: torch.from_numpy(np.asarray(v, order="C")) for k, v in state.items()}
    torch.save({wrap: tensors, **extra} if wrap else tensors, path)
    return path


def run_convert(*args: str | Path) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, in a fresh interpreter."""
    return subprocess.run([sys.executable, str(CONVERT), *map(str, args)], capture_output=True, text=True)


def clone_files() -> list[str]:
    """The clone's files as git lists them, tracked and new, not what .gitignore keeps out (.venv, build/)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return sorted(f for f in out.split("\0") if f and (ROOT / f).is_file())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def official_manifest(name: str) -> list[tuple[str, tuple[int, ...]]]:
    import json

    return [(k, tuple(s)) for k, s in json.loads((MANIFESTS / f"{name}.json").read_text())]


def random_from_manifest(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    """An official-layout state dict with the manifest's keys and shapes and random values."""
    rng = np.random.RandomState(seed)
    out = {}
    for key, shape in official_manifest(name):
        if key.endswith("num_batches_tracked"):
            out[key] = np.array(rng.randint(1, 1000), dtype=np.int64)
        elif key.endswith("running_var"):
            out[key] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            out[key] = (rng.standard_normal(shape) / np.sqrt(max(fan_in, 1))).astype(np.float32)
    return out


def pretrained_logits(name: str, path: Path, x: np.ndarray, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode logits of ``create_model(name, pretrained=path)`` in PyTorch and in Jittor."""
    import models_jittor
    import models_pytorch
    from mlp_zoo.jittor_support.runtime import jt

    with torch.no_grad():
        ours = models_pytorch.create_model(name, pretrained=path, **kwargs).eval()(torch.from_numpy(x)).numpy()
    jm = models_jittor.create_model(name, pretrained=path, **kwargs)
    jm.eval()
    with jt.no_grad():
        theirs = jm(jt.array(x)).numpy()
    return ours, theirs


def noise_folder(root: Path, per_class: int) -> Path:
    """An image folder of two classes, ``a`` and ``b``, of ``per_class`` 32x32 noise PNGs each: labels that carry
    nothing, for the training machinery (data-parallel, resume), not for accuracy."""
    from PIL import Image

    rng = np.random.RandomState(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.randint(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / label / f"{i:03d}.png")
    return root
