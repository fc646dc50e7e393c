"""Data-parallel training on the frameworks' own engines equals one process: PyTorch's DDP under torchrun (gloo on
the CPU) and Jittor's MPI mode under mpirun (Open MPI from `make dist-setup`), 2 processes with a global batch of
16 against one process with batch 16, and gradient accumulation (2 x 8) against batch 16, over 20 steps.

ViP-S/7 runs 2 steps at 112 px (a quarter of 224's tokens: the same permutator code, stage grids 16 and 8) on a
folder of 50 images (40 train, 10 test): on the digits its epoch-end evaluation of 359 images took longer than the
training it follows.

SGD with momentum: the runs differ only in the order of the batch mean's sums (a few 1e-8); AdamW divides each
gradient by its running RMS and so amplifies that rounding where gradients are near zero (measured here: 1e-6
after 7 steps, 1.1e-3 after 20), which says nothing about the data-parallel machinery."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import noise_folder

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TOL = 1e-5  # per-step losses and final weights, absolute

CASES = [("mixer_s32", 64, 20), pytest.param("vip_s7", 112, 2, marks=pytest.mark.slow)]  # ViP-S/7 on 16x16 and 8x8 grids


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory) -> Path:
    """Two classes of 25 noise images each: 40 train images (two batches of 16) and 10 test images."""
    return noise_folder(tmp_path_factory.mktemp("small_folder"), 25)


def _data(model: str, folder: Path) -> list[str]:
    return ["--data", str(folder)] if model == "vip_s7" else []


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _finetune(launcher: list[str], out: Path, framework: str, model: str, size: int, steps: int,
              *extra: str) -> dict:
    cmd = [*launcher, str(ROOT / "tools" / "finetune.py"), "--framework", framework, "--model", model,
           "--img-size", str(size), "--steps", str(steps), "--batch-size", "16", "--optimizer", "sgd", "--lr", "0.05",
           "--out", str(out), "--log-every", "10", *extra]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr[-3000:]}"
    return json.loads((out / "finetune.json").read_text())["runs"][framework]


def _weights(path: str) -> dict[str, np.ndarray]:
    if path.endswith(".pth"):
        import torch

        return {k: v.numpy() for k, v in torch.load(path, weights_only=True)["state_dict"].items()}
    from mlp_zoo.jittor_support.runtime import jt

    return {k: np.asarray(v) for k, v in jt.load(path)["state_dict"].items()}


def _assert_same_run(a: dict, b: dict, steps: int) -> None:
    assert len(a["losses"]) == len(b["losses"]) == steps  # both trained every step
    np.testing.assert_allclose(a["losses"], b["losses"], rtol=0, atol=TOL)
    wa, wb = _weights(a["checkpoint"]), _weights(b["checkpoint"])
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=0, atol=TOL, err_msg=k)


def _mpirun() -> list[str]:
    mpirun = BIN / "mpirun"
    if not mpirun.exists():
        pytest.skip(f"Open MPI is not installed in this environment ({mpirun} missing): run `make dist-setup`")
    return [str(mpirun), "-np", "2", "--allow-run-as-root", "--oversubscribe", sys.executable]


@pytest.mark.parametrize("model,size,steps", CASES)
def test_torchrun_ddp_equals_one_process(tmp_path: Path, small_folder: Path, model: str, size: int, steps: int):
    data = _data(model, small_folder)
    one = _finetune([sys.executable], tmp_path / "one", "torch", model, size, steps, *data)
    two = _finetune([str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2"], tmp_path / "two",
                    "torch", model, size, steps, *data)
    _assert_same_run(one, two, steps)
    if model == "mixer_s32":
        accumulated = _finetune([sys.executable], tmp_path / "accum", "torch", model, size, steps,
                                "--batch-size", "8", "--accum-steps", "2")
        _assert_same_run(one, accumulated, steps)


@pytest.mark.parametrize("model,size,steps", CASES)
def test_mpirun_jittor_equals_one_process(tmp_path: Path, small_folder: Path, model: str, size: int, steps: int):
    mpirun = _mpirun()
    data = _data(model, small_folder)
    one = _finetune([sys.executable], tmp_path / "one", "jittor", model, size, steps, *data)
    two = _finetune(mpirun, tmp_path / "two", "jittor", model, size, steps, *data)
    _assert_same_run(one, two, steps)
    if model == "mixer_s32":
        accumulated = _finetune([sys.executable], tmp_path / "accum", "jittor", model, size, steps,
                                "--batch-size", "8", "--accum-steps", "2")
        _assert_same_run(one, accumulated, steps)


@pytest.mark.parametrize("framework", ["torch", "jittor"])
def test_batchnorm_statistics_are_synchronised(tmp_path: Path, small_folder: Path, framework: str):
    """ConvMLP-S (BatchNorm in its convolutional stem and stages) at 64 px, 2 steps of global batch 4: 2 processes
    equal 1 process on the global batch, losses and every weight, running mean and variance included, within
    ``TOL`` (ranks normalising by their own 2 images each would not). PyTorch under torchrun (our SyncBatchNorm2d: PyTorch's refuses the CPU),
    Jittor under mpirun."""
    launcher = ([str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2"] if framework == "torch"
                else _mpirun())
    extra = ["--data", str(small_folder), "--batch-size", "4", "--aug", "none", "--workers", "1"]
    one = _finetune([sys.executable], tmp_path / "one", framework, "convmlp_s", 64, 2, *extra)
    two = _finetune(launcher, tmp_path / "two", framework, "convmlp_s", 64, 2, *extra)
    _assert_same_run(one, two, 2)
    assert any("running_var" in k for k in _weights(two["checkpoint"]))
