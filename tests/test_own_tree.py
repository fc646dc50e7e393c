"""The guard that keeps the project self-contained notices reads beside the repository, and only those."""
from __future__ import annotations

import os
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
