"""A Jittor cache compiled under another path (shared or copied, as in containers and clusters): Jittor 1.3.11 then
recompiles its jit_utils core and calls ``sys.exit(0)`` in the middle of ``import jittor``; every entry point must
still do its job, never end with exit status 0 having done nothing."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlp_zoo.jittor_support.paths import jittor_home

ROOT = Path(__file__).resolve().parent.parent
PROGRESS = "compiling Jittor's core"  # the runtime's line when it completes an import Jittor ended


@pytest.fixture(scope="module")
def moved_cache(tmp_path_factory) -> tuple[Path, dict[Path, str]]:
    """A fresh HOME whose .cache points at a private copy of this checkout's compiled Jittor cache (a copy: the
    recompilation must not flip the shared cache's keys under other users), and the jit_utils core's keys as built
    under the original path. Every other key is moved to the new path, as if it had been rebuilt there: the real
    case recompiles Jittor's whole core too (minutes), which changes nothing in how the import ends."""
    from mlp_zoo.jittor_support.runtime import jt  # noqa: F401  (compiles this checkout's cache, if not yet)
    import jittor_utils

    built, cache = jittor_home() / ".cache" / "jittor", Path(jittor_utils.cache_path)
    base = tmp_path_factory.mktemp("moved")
    copied = base / "built-elsewhere" / ".cache" / "jittor"
    shutil.copytree(cache, copied / cache.relative_to(built), symlinks=True,
                    ignore=shutil.ignore_patterns("tmp", "checkpoints"))
    home = base / "home"
    home.mkdir()
    (home / ".cache").symlink_to(copied.parent, target_is_directory=True)
    stale = {}
    for key in copied.rglob("*.key"):
        text = key.read_text()
        if key.name.startswith("jit_utils_core"):
            stale[key] = text
        else:
            key.write_text(text.replace(str(built), str(home / ".cache" / "jittor")))
    assert stale, f"no compiled jit_utils core in {cache}"
    return home, stale


def _run_first_time(moved_cache: tuple[Path, dict[Path, str]], *args: str) -> subprocess.CompletedProcess:
    """Run ``python args`` under the fresh HOME, its jit_utils core as compiled under the other path."""
    home, stale = moved_cache
    for key, text in stale.items():
        key.write_text(text)
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("JITTOR_HOME", None)
    r = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout + r.stderr
    assert PROGRESS in r.stderr, r.stderr  # Jittor did end the import (the case under test) and said why
    return r


BUILD = """
import numpy as np
import models_jittor
from mlp_zoo.jittor_support.runtime import jt
model = models_jittor.create_model("mixer_s32", img_size=64, num_classes=10)
model.eval()
x = jt.array(np.random.RandomState(0).standard_normal((2, 3, 64, 64)).astype(np.float32))
features = model.forward_features(x)
logits = model.forward_head(features).numpy()  # zero: Mixer's head starts at zero, as in timm
print("logits", logits.shape, "features", bool(np.isfinite(features.numpy()).all() and features.numpy().std() > 0.1))
"""


def test_importing_models_jittor_builds_a_model(moved_cache):
    r = _run_first_time(moved_cache, "-c", BUILD)
    assert r.stdout.split() == ["logits", "(2,", "10)", "features", "True"]


def test_compare_tool_runs(moved_cache):
    r = _run_first_time(moved_cache, "tools/compare.py", "--models", "mixer_s32", "--batch", "1", "--runs", "1",
                        "--warmup", "0")
    rows = [line.split("|")[1:3] for line in r.stdout.splitlines() if line.startswith("| mixer_s32")]
    assert [[cell.strip() for cell in row] for row in rows] == [["mixer_s32", "torch"], ["mixer_s32", "jittor"]]


def test_pytest_runs_a_test_file(moved_cache):
    # -s: the runtime's line would be captured with the collection's output
    r = _run_first_time(moved_cache, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                        "tests/test_einops_jittor.py")
    assert " passed" in r.stdout and "failed" not in r.stdout and "error" not in r.stdout


@pytest.mark.parametrize("code, error", [(0, "Jittor ended its import again"),
                                         (3, "importing Jittor ended with exit status 3")])
def test_an_import_jittor_keeps_ending_fails_loudly(tmp_path, code, error):
    """Where the import cannot be completed (here a stand-in for Jittor that always exits), the program fails with
    the cause in one line, never exit status 0 having done nothing."""
    (tmp_path / "jittor.py").write_text(f"import sys\nsys.exit({code})\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(tmp_path), str(ROOT)))}
    r = subprocess.run([sys.executable, "-c", "import models_jittor; print('imported')"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode not in (0, code) and r.stdout == ""
    assert r.stderr.splitlines()[-1].startswith(f"mlp_zoo.jittor_support.runtime.JittorSetupError: {error}")
