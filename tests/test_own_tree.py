"""The guard that keeps the project self-contained notices reads beside the repository, and only those."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import own_tree
from own_tree import ROOT, is_outside


def test_siblings_of_the_repository_are_outside():
    assert is_outside(ROOT.parent / "notes" / "reference" / "manifests" / "smlpnet_t.json")
    assert is_outside(os.fsencode(ROOT.parent / "elsewhere"))
    assert is_outside(str(ROOT) + "-other-clone/README.md")  # a prefix of the name is not the repository


def test_the_repository_python_and_temp_are_inside():
    assert not is_outside(ROOT / "tests" / "data" / "manifests" / "smlpnet_t.json")
    assert not is_outside(ROOT)
    assert not is_outside(os.path.join(sys.prefix, "lib"))
    assert not is_outside(tempfile.mkdtemp())  # beside the repository when the clone sits in the temp folder


def test_a_read_beside_the_repository_is_recorded(tmp_path):
    before = len(own_tree.reads_outside)
    try:
        open(ROOT.parent / "notes-that-a-clone-lacks.json").close()
    except OSError:
        pass  # the attempt is what counts, whether or not the file exists
    recorded = own_tree.reads_outside[before:]
    del own_tree.reads_outside[before:]  # this test's own read must not fail it
    assert recorded == [str(ROOT.parent / "notes-that-a-clone-lacks.json")]


GUARD = "import json, sys, own_tree; print(json.dumps([own_tree.is_outside(p) for p in sys.argv[1:]]))"


def test_a_home_beside_the_clone_is_the_users(tmp_path):
    """A clone at x/repo with HOME=x/home: the user's home, caches and configuration (XDG_*, MPLCONFIGDIR, the Jittor
    home its config names) are theirs to read; a sibling of the clone still counts as outside."""
    x = tmp_path / "x"
    repo, home = x / "repo", x / "home"
    (repo / "tests").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "own_tree.py", repo / "tests")
    (home / ".cache" / "jittor").mkdir(parents=True)
    (home / ".cache" / "jittor" / "config.json").write_text(json.dumps({"JITTOR_HOME": str(x / "jittor-home")}))
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(x / "cache"),
           "XDG_DATA_DIRS": f"{x / 'share-a'}{os.pathsep}{x / 'share-b'}", "MPLCONFIGDIR": str(x / "mpl")}
    env.pop("JITTOR_HOME", None)
    users = [home / ".cache" / "jittor" / "config.json", home / ".config" / "matplotlib" / "matplotlibrc", home,
             x / "cache" / "matplotlib" / "fontlist-v390.json", x / "share-b" / "fonts", x / "mpl" / "matplotlibrc",
             x / "jittor-home" / ".cache" / "jittor" / "mkl", repo / "tests" / "data"]
    siblings = [x / "notes" / "manifest.json", x / "repo-other" / "README.md", x / "home-other"]
    r = subprocess.run([sys.executable, "-c", GUARD, *map(str, users + siblings)], cwd=repo / "tests", env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [False] * len(users) + [True] * len(siblings)
