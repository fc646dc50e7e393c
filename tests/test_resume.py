"""Checkpoints and resume: a run killed with SIGKILL at a random step inside an epoch and resumed with --resume
ends with the weights of the uninterrupted run, bit for bit on one thread, in both frameworks, with the whole
recipe on (warmup + cosine, label smoothing, clipping, accumulation, EMA); a cut-off checkpoint is never used."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_distributed import ROOT, _env, _weights

STEPS, SAVE_EVERY = 12, 3
RECIPE = ["--model", "mixer_s32", "--img-size", "64", "--steps", str(STEPS), "--batch-size", "8",
          "--accum-steps", "2", "--warmup-steps", "3", "--min-lr", "1e-5", "--label-smoothing", "0.1",
          "--clip-grad", "0.5", "--ema-decay", "0.9", "--save-every", str(SAVE_EVERY)]


def _cmd(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "tools" / "finetune.py"), *args]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(*args), env=_env(), capture_output=True, text=True, timeout=1200)


def _kill_at(step: int, *args: str) -> None:
    """Start a run and SIGKILL it once it has reported ``step``, i.e. somewhere inside the next step or save."""
    proc = subprocess.Popen(_cmd(*args), env=_env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:
        if f" step {step}/" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=600)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"


@pytest.mark.parametrize("framework", ["torch", "jittor"])
def test_sigkill_then_resume_equals_the_uninterrupted_run(tmp_path: Path, framework: str):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = _run(*RECIPE, "--framework", framework, "--out", str(whole))
    assert done.returncode == 0, done.stderr[-3000:]
    kill_step = random.Random().randint(SAVE_EVERY + 1, STEPS - 2)  # past a save, inside the epoch
    _kill_at(kill_step, *RECIPE, "--framework", framework, "--out", str(killed))
    state = killed / f"checkpoint_{framework}{'.pth' if framework == 'torch' else '.pkl'}"
    assert state.exists() and not (killed / "finetune.json").exists()
    # a checkpoint cut off mid-write is a temporary file beside the real one: plant one, it must be ignored
    (killed / f".checkpoint_{framework}.tmp-1{state.suffix}").write_bytes(state.read_bytes()[:1000])
    resumed = _run("--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    a = json.loads((whole / "finetune.json").read_text())["runs"][framework]
    b = json.loads((killed / "finetune.json").read_text())["runs"][framework]
    assert a["losses"] == b["losses"] and a["ema_accuracies"] == b["ema_accuracies"], kill_step
    for key in ("checkpoint", "ema_checkpoint"):
        wa, wb = _weights(a[key]), _weights(b[key])
        assert wa.keys() == wb.keys()
        for k in wa:
            assert np.array_equal(wa[k], wb[k]), (kill_step, key, k, np.abs(wa[k] - wb[k]).max())
    # a truncated checkpoint handed to --resume: named, non-zero exit, nothing written
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "finetune_args.json").write_text((killed / "finetune_args.json").read_text())
    (cut / state.name).write_bytes(state.read_bytes()[:len(state.read_bytes()) // 2])
    bad = _run("--resume", str(cut))
    assert bad.returncode != 0 and f"{cut / state.name}: not a complete training checkpoint" in bad.stderr
    assert sorted(p.name for p in cut.iterdir()) == sorted(["finetune_args.json", state.name])
