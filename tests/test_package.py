"""The zoo as a user installs it: a wheel built from the clone through ``pip``'s git URL, installed non-editable
into a fresh venv, used from a folder with no clone on ``sys.path``; and a clone's ``tools/NAME.py`` shims.

The fresh venv takes its dependencies (torch, Jittor, ...) from the project's venv through a ``.pth`` line, so
nothing is downloaded; the release the conversion names is a stand-in in SPACH's layout served by a local
``http.server`` as ``MLPZOO_MIRROR``."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, clone_files, random_from_manifest, save_torch
from local_server import serving
from mlp_zoo.cli import COMMANDS

# the only top-level import names an installed zoo may add beside a user's own packages
TOP_LEVEL = {"mlp_zoo", "models_pytorch", "models_jittor", "weights_convert"}
# generic names the zoo used to install at top level, which shadowed or were shadowed by a user's own
GENERIC = ("tools", "training", "image_data", "model_specs", "jittor_support")


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """A snapshot of the clone as a git repository, its wheel built by ``pip wheel git+file://...`` and installed
    into a fresh venv: {'src', 'wheel', 'venv', 'work'} (work: an empty folder to run the commands from)."""
    tmp = tmp_path_factory.mktemp("package")
    src = tmp / "src"
    for f in clone_files():  # the working tree as it is, uncommitted edits included
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        (src / f).write_bytes((ROOT / f).read_bytes())
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "init.defaultBranch=main"]
    _run([*git, "init", "-q"], src)
    _run([*git, "add", "-A"], src)
    _run([*git, "commit", "-q", "-m", "snapshot"], src)

    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}  # setuptools' deprecation notices
    env.pop("PYTHONPATH", None)
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "dist"),
          f"git+file://{src}"], tmp, env)
    (wheel,) = (tmp / "dist").glob("mlp_zoo-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp)
    (site,) = (venv / "lib").glob("python*/site-packages")
    # a path line (not `import site`): the project venv's own .pth files, its editable zoo among them, stay unread
    (site / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", "--ignore-installed",
          str(wheel)], tmp, env)
    work = tmp / "work"
    work.mkdir()
    return {"src": src, "wheel": wheel, "venv": venv, "work": work}


def _user_env(tmp: Path) -> dict[str, str]:
    """A user's environment: no PYTHONPATH pointing at a clone, the caches in tmp."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("MLPZOO_")}
    return {**env, "MLPZOO_CACHE": str(tmp / "cache"), "MPLBACKEND": "Agg"}


def test_wheel_holds_the_packages_their_data_and_nothing_generic(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    top = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert top == TOP_LEVEL, f"top-level names in the wheel: {sorted(top)}"
    # every file of the packages in the clone, .py or data (kernels, label lists, READMEs), is in the wheel
    shipped = {f for f in clone_files() if f.split("/")[0] in TOP_LEVEL and "__pycache__" not in f}
    missing = shipped - set(names)
    assert not missing, f"files of the packages missing from the wheel: {sorted(missing)[:10]}"
    kernels = {n for n in names if n.startswith("mlp_zoo/jittor_support/kernels/") and n.endswith(".h")}
    labels = {n for n in names if n.startswith("mlp_zoo/image_data/labels/") and n.endswith(".txt")}
    assert "mlp_zoo/jittor_support/kernels/common.h" in kernels and len(kernels) >= 10, sorted(kernels)
    assert "mlp_zoo/image_data/labels/imagenet_synsets.txt" in labels and len(labels) == 3, sorted(labels)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "mlp-zoo = mlp_zoo.cli:main" in zipfile.ZipFile(installed["wheel"]).read(entry_points).decode()


def test_installed_zoo_imports_from_the_venv_and_adds_no_generic_name(installed):
    probe = f"""
import importlib.util, json, mlp_zoo, models_pytorch, models_jittor, weights_convert
from mlp_zoo.image_data.labels import class_names
from mlp_zoo.jittor_support.cpu_kernels import kernel_source
print(json.dumps({{"files": [m.__file__ for m in (mlp_zoo, models_pytorch, models_jittor, weights_convert)],
                   "generic": [n for n in {GENERIC!r} if importlib.util.find_spec(n)],
                   "labels": [len(class_names(s)) for s in ("imagenet-1k", "imagenet-21k")], "kernel": len(kernel_source("gelu"))}}))
"""
    import json

    out = json.loads(_run([str(installed["venv"] / "bin" / "python"), "-c", probe], installed["work"],
                          _user_env(installed["work"])))
    site = str(installed["venv"].resolve())
    assert all(f.startswith(site) for f in out["files"]), out["files"]
    assert out["generic"] == [], f"importable generic top-level names: {out['generic']}"
    assert out["labels"] == [1000, 21843] and out["kernel"] > 100


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_each_console_subcommand_has_help(installed, command):
    argv = [str(installed["venv"] / "bin" / "mlp-zoo"), *([command] if command else []), "--help"]
    out = _run(argv, installed["work"], _user_env(installed["work"]))
    assert out.startswith("usage: mlp-zoo"), out[:300]
    if command is None:
        assert all(name in out for name in COMMANDS)


@pytest.fixture(scope="module")
def spach_s(tmp_path_factory) -> Path:
    """A stand-in for SPACH's published ``smlp_s.pth``: random values in its layout ({'model': ...})."""
    path = tmp_path_factory.mktemp("mirror") / "smlp_s.pth"
    return save_torch(path, random_from_manifest("smlpnet_s"), wrap="model")


def _same_weights(a: Path, b: Path) -> None:
    from weights_convert.checkpoint import read_checkpoint

    sa, sb = read_checkpoint(a).state, read_checkpoint(b).state
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


def test_installed_command_converts_a_release_by_name_from_a_mirror(installed, spach_s):
    """`mlp-zoo convert torch2jittor smlpnet_s.spach_in1k out.pkl`, the file fetched from MLPZOO_MIRROR."""
    work = installed["work"]
    with serving(spach_s.parent) as url:
        _run([str(installed["venv"] / "bin" / "mlp-zoo"), "convert", "torch2jittor", "smlpnet_s.spach_in1k",
              "smlp_s.pkl"], work, {**_user_env(work), "MLPZOO_MIRROR": url})
    _same_weights(work / "smlp_s.pkl", spach_s)
    assert list((work / "cache").rglob("smlp_s.pth")), "the release did not go to MLPZOO_CACHE"


def test_clone_shim_converts_with_the_clones_code(tmp_path):
    """`python tools/convert.py torch2jittor ...` from any folder runs the clone's code, even where another
    `mlp_zoo` (an installed zoo; here a broken one on PYTHONPATH) would be found first."""
    shadow = tmp_path / "shadow" / "mlp_zoo"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('the shadowing mlp_zoo was imported')\n")
    spach_t = save_torch(tmp_path / "smlp_t.pth", random_from_manifest("smlpnet_t"), wrap="model")
    env = {**os.environ, "PYTHONPATH": str(shadow.parent)}
    _run([sys.executable, str(ROOT / "tools" / "convert.py"), "torch2jittor", str(spach_t), "smlp_t.pkl"],
         tmp_path, env)
    _same_weights(tmp_path / "smlp_t.pkl", spach_t)
