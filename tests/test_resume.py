"""Checkpoints and resume: a run killed with SIGKILL, or preempted with SIGTERM (it finishes its step, saves and
exits 143), at a random step inside an epoch and resumed with --resume from another folder ends with the weights of
the uninterrupted run, bit for bit on one thread, in both frameworks, with the whole recipe on (warmup + cosine,
label smoothing, clipping, accumulation, EMA); no process of the killed run is left; a cut-off checkpoint is never
used, and the temporary file of a dead writer is removed."""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import noise_folder
from processes import tagged_env, wait_until_gone
from test_distributed import ROOT, _env, _weights

STEPS, SAVE_EVERY = 8, 4  # one epoch of the folder below; each save writes the 295 MB training state (AdamW, EMA)
RECIPE = ["--model", "mixer_s32", "--img-size", "64", "--steps", str(STEPS), "--batch-size", "8",
          "--accum-steps", "2", "--warmup-steps", "3", "--min-lr", "1e-5", "--label-smoothing", "0.1",
          "--clip-grad", "0.5", "--ema-decay", "0.9", "--save-every", str(SAVE_EVERY)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two classes of 80 noise images: 128 training images (8 steps of 16) and 32 test images, evaluated twice
    (weights and EMA) at the end of every finished run: the digits' 359 made evaluation most of a run's time."""
    return noise_folder(tmp_path_factory.mktemp("resume_folder"), 80)


def _cmd(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "tools" / "finetune.py"), *args]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(*args), env=_env(), capture_output=True, text=True, timeout=1200, cwd=cwd)


def _kill_at(step: int, sig: int, *args: str, cwd: Path) -> str:
    """Start a run and send it ``sig`` once it has reported ``step``, i.e. somewhere inside the next step or
    save; returns what it printed after. SIGKILL ends it there; SIGTERM once its step is done and saved."""
    env, tag = tagged_env(_env())
    proc = subprocess.Popen(_cmd(*args), env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            cwd=cwd)
    for line in proc.stderr:
        if f" step {step}/" in line:
            proc.send_signal(sig)
            break
    rest = proc.stderr.read()
    proc.wait(timeout=600)
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 143), (proc.returncode, rest[-2000:])
    assert wait_until_gone(tag, seconds=5) == [], "a process of the killed run is still running"
    return rest


@pytest.mark.parametrize("framework", ["torch", "jittor"])
def test_sigkill_or_sigterm_then_resume_equals_the_uninterrupted_run(tmp_path: Path, folder: Path, framework: str):
    recipe = [*RECIPE, "--data", str(folder)]
    whole = tmp_path / "whole"
    done = _run(*recipe, "--framework", framework, "--out", str(whole))
    assert done.returncode == 0, done.stderr[-3000:]
    a = json.loads((whole / "finetune.json").read_text())["runs"][framework]
    suffix = ".pth" if framework == "torch" else ".pkl"
    for sig in (signal.SIGKILL, signal.SIGTERM):
        name = signal.Signals(sig).name
        kill_step = random.Random().randint(SAVE_EVERY + 1, STEPS - 2)  # past a save, inside the epoch
        (tmp_path / name).mkdir()
        # started with a relative --out in one folder, resumed from another: the paths were recorded absolute
        said = _kill_at(kill_step, sig, *recipe, "--framework", framework, "--out", "killed", cwd=tmp_path / name)
        killed = tmp_path / name / "killed"
        state = killed / f"checkpoint_{framework}{suffix}"
        assert state.exists() and not (killed / "finetune.json").exists()
        if sig == signal.SIGTERM:  # stopped after the step it was in, saved there, and says how to go on
            # the signal lands after step kill_step, or already inside the next one
            assert any(f"preempted at step {s}/{STEPS}" in said for s in (kill_step, kill_step + 1)), said[-2000:]
            assert f"resume with: mlp-zoo finetune --resume {killed}" in said
        # a checkpoint cut off mid-write is a temporary file beside the real one: one of a dead writer is removed,
        # one of unknown origin is never read
        dead = subprocess.Popen(["true"])
        dead.wait()
        stale = killed / f".checkpoint_{framework}.tmp-{socket.gethostname()}-{dead.pid}{suffix}"
        stale.write_bytes(state.read_bytes()[:1000])
        (killed / f".checkpoint_{framework}.tmp-1{suffix}").write_bytes(state.read_bytes()[:1000])
        resumed = _run("--resume", str(killed), cwd=ROOT)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "resumed from" in resumed.stderr and not stale.exists()
        b = json.loads((killed / "finetune.json").read_text())["runs"][framework]
        assert a["losses"] == b["losses"] and a["ema_accuracies"] == b["ema_accuracies"], (name, kill_step)
        for key in ("checkpoint", "ema_checkpoint"):
            wa, wb = _weights(a[key]), _weights(b[key])
            assert wa.keys() == wb.keys()
            for k in wa:
                assert np.array_equal(wa[k], wb[k]), (name, kill_step, key, k, np.abs(wa[k] - wb[k]).max())
    # a truncated checkpoint handed to --resume: named, non-zero exit, nothing written
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "finetune_args.json").write_text((killed / "finetune_args.json").read_text())
    (cut / state.name).write_bytes(state.read_bytes()[:len(state.read_bytes()) // 2])
    bad = _run("--resume", str(cut))
    assert bad.returncode != 0 and f"{cut / state.name}: not a complete training checkpoint" in bad.stderr
    assert sorted(p.name for p in cut.iterdir()) == sorted(["finetune_args.json", state.name])
