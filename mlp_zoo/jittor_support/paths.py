"""Where Jittor keeps its caches, and whether a GPU is visible: known without importing Jittor."""
from __future__ import annotations

import json
import os
from pathlib import Path


def jittor_home() -> Path:
    """The folder Jittor keeps its caches under, resolved as Jittor itself does."""
    if os.environ.get("JITTOR_HOME"):
        return Path(os.environ["JITTOR_HOME"]).resolve()
    config = Path.home() / ".cache" / "jittor" / "config.json"
    try:
        return Path(json.loads(config.read_text()).get("JITTOR_HOME", str(Path.home())))
    except (OSError, ValueError):
        return Path.home()


def has_cuda_device() -> bool:
    """Whether an NVIDIA GPU is visible (a CUDA toolkit alone is not enough for Jittor)."""
    return Path("/dev/nvidiactl").exists() and Path("/dev/nvidia0").exists()
