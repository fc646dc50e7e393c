"""Long jobs against the real world: no process of ours outlives a killed parent (training, validate, predict; SIGTERM
and SIGKILL), the temporary files of writers killed mid-save are removed (only theirs), and a data-parallel run whose
rank-1 shards lose every image to bad files completes with the losses of one process on the same global batches
(the gradient is the mean over the images kept). SIGTERM then --resume: tests/test_resume.py."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from processes import stream_workers, tagged_env, wait_until_gone
from test_distributed import BIN, ROOT, _env, _mpirun
from mlp_zoo.training.checkpoint import remove_stale_temporaries

TOL = 1e-5  # per-step losses, absolute: the runs differ in the order of sums only


@pytest.fixture(scope="module")
def many_links(tmp_path_factory) -> Path:
    """Two class folders of 1000 links each to one small photo: enough work to be killed in the middle of."""
    root = tmp_path_factory.mktemp("links")
    image = root / "one.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (48, 48, 3), dtype=np.uint8)).save(image)
    for label in ("a", "b"):
        (root / "data" / label).mkdir(parents=True)
        for i in range(1000):
            os.symlink(image, root / "data" / label / f"{i}.png")
    return root / "data"


def _command(tool: str, data: Path, out: Path) -> list[str]:
    if tool == "finetune":
        return [sys.executable, str(ROOT / "tools" / "finetune.py"), "--model", "mixer_s32", "--img-size", "32",
                "--data", str(data), "--steps", "10000", "--batch-size", "4", "--workers", "2", "--out", str(out)]
    return [sys.executable, str(ROOT / "tools" / f"{tool}.py"), str(data), "--model", "mixer_s32", "--img-size",
            "32", "--batch-size", "4", "--workers", "2"]


@pytest.mark.parametrize("tool,sig", [("finetune", signal.SIGKILL), ("validate", signal.SIGTERM),
                                      ("validate", signal.SIGKILL), ("predict", signal.SIGTERM),
                                      ("predict", signal.SIGKILL)])
def test_no_process_outlives_a_killed_parent(tmp_path: Path, many_links: Path, tool: str, sig: int):
    env, tag = tagged_env(_env())
    proc = subprocess.Popen(_command(tool, many_links, tmp_path / "out"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(stream_workers(proc.pid)) < 2:  # its image workers are up
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no workers started"
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode == -sig
    assert wait_until_gone(tag, seconds=5) == []  # before: every worker stayed, re-parented to PID 1


def test_only_the_temporaries_of_dead_writers_are_removed(tmp_path: Path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    host = socket.gethostname()
    dead = [tmp_path / f".checkpoint_torch.tmp-{host}-{gone.pid}.pth",
            tmp_path / f".mixer_s32_jittor_ema.tmp-{host}-{gone.pid}.pkl"]
    kept = [tmp_path / f".checkpoint_torch.tmp-{host}-{os.getpid()}.pth",  # a live writer
            tmp_path / f".checkpoint_torch.tmp-another-host-{gone.pid}.pth",  # maybe alive, elsewhere
            tmp_path / "checkpoint_torch.pth", tmp_path / "notes.tmp-1.txt"]
    for path in dead + kept:
        path.write_bytes(b"x")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(dead)
    assert sorted(tmp_path.iterdir()) == sorted(kept)


@pytest.fixture(scope="module")
def half_bad_folder(tmp_path_factory) -> Path:
    """Two classes of 10 good and 10 bad (not decodable) images each."""
    root = tmp_path_factory.mktemp("half_bad")
    rng = np.random.RandomState(0)
    for label in ("a", "b"):
        (root / label).mkdir()
        for i in range(10):
            Image.fromarray(rng.randint(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / label / f"g{i}.png")
            (root / label / f"b{i}.png").write_bytes(b"not an image " * (i + 1))
    return root


def _bad_shard_run(launcher: list[str], out: Path, framework: str, data: Path) -> tuple[dict, str]:
    cmd = [*launcher, str(ROOT / "tools" / "finetune.py"), "--framework", framework, "--model", "mixer_s32",
           "--img-size", "32", "--data", str(data), "--steps", "8", "--batch-size", "2", "--optimizer", "sgd",
           "--lr", "0.05", "--aug", "none", "--workers", "1", "--out", str(out)]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr[-3000:]}"
    return json.loads((out / "finetune.json").read_text())["runs"][framework], done.stderr


@pytest.mark.parametrize("framework", ["torch", "jittor"])
def test_a_rank_whose_shards_are_all_bad_takes_part_and_the_run_completes(tmp_path: Path, half_bad_folder: Path,
                                                                          framework: str):
    launcher = ([str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2"] if framework == "torch"
                else _mpirun())
    two, log = _bad_shard_run(launcher, tmp_path / "two", framework, half_bad_folder)
    # rank 1 (one image per step) lost its whole shard in some steps, and was counted
    empty = [int(line.split("; ")[1].split()[0]) for line in log.splitlines() if " rank 1: skipped" in line]
    assert empty and empty[0] > 0, log[-2000:]
    one, _ = _bad_shard_run([sys.executable], tmp_path / "one", framework, half_bad_folder)
    assert len(one["losses"]) == len(two["losses"]) == 8
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=0, atol=TOL)


def test_sigterm_is_a_request_here_and_still_ends_a_forked_child():
    """The first SIGTERM sets the flag (the loop saves and stops); a process forked meanwhile (Jittor's compiler
    pool) inherits the handler but must still die of SIGTERM, or its pool's shutdown waits for it forever."""
    from mlp_zoo.training.preemption import Preemption

    before = signal.getsignal(signal.SIGTERM)
    with Preemption() as preemption:
        ready_r, ready_w = os.pipe()
        child = os.fork()
        if child == 0:
            os.write(ready_w, b"1")  # past CPython's after-fork reset, which drops a signal that lands before it
            time.sleep(30)
            os._exit(0)
        os.read(ready_r, 1)
        os.close(ready_r), os.close(ready_w)
        os.kill(child, signal.SIGTERM)
        _, status = os.waitpid(child, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
        assert not preemption.requested
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not preemption.requested and time.monotonic() < deadline:
            time.sleep(0.01)
        assert preemption.requested
    assert signal.getsignal(signal.SIGTERM) == before  # the handler it replaced is back
