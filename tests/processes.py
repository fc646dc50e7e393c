"""Finding the processes a test started, through /proc (Linux): a run is tagged with an environment variable
that every process it starts inherits, so a worker re-parented to PID 1 is still found."""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

TAG = "MLP_ZOO_TEST_TAG"


def tagged_env(env: dict[str, str]) -> tuple[dict[str, str], str]:
    """``env`` with a fresh tag, and the tag."""
    tag = uuid.uuid4().hex
    return {**env, TAG: tag}, tag


def tagged(tag: str) -> list[int]:
    """PIDs of the live processes carrying ``tag`` (zombies excluded: they hold nothing)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"{TAG}={tag}".encode() not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
        except OSError:  # gone meanwhile, or not ours
            continue
        found.append(int(entry.name))
    return found


def stream_workers(parent: int) -> list[int]:
    """Live ``image_data.stream`` workers (spawned interpreters) whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if (entry.name.isdigit() and int(stat[1]) == parent and stat[0] != "Z"
                    and b"spawn_main" in (entry / "cmdline").read_bytes()):
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def wait_until_gone(tag: str, seconds: float = 5.0) -> list[int]:
    """The tagged processes still alive after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while (left := tagged(tag)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left
