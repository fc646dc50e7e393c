"""What predict and validate leave behind them: output files with the mode the umask gives (as any program's
``open()``), and progress as plain lines, not a redrawn bar, when stderr is not a terminal."""
from __future__ import annotations

import io
import os
import stat
import sys

import pytest

from mlp_zoo.tools.classify import progress, write_atomic_text


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_get_the_umasks_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_atomic_text(str(tmp_path / "results.csv"), "a,b\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "results.csv").stat().st_mode) == mode
    assert (tmp_path / "results.csv").read_text() == "a,b\n" and os.listdir(tmp_path) == ["results.csv"]


def test_progress_off_a_terminal_is_a_line_per_thousand_images(monkeypatch):
    err = io.StringIO()  # not a terminal, like a CI log or a file
    monkeypatch.setattr(sys, "stderr", err)
    bar = progress(2500, "validate torch")
    for _ in range(2500 // 50):
        bar.update(50)
    bar.close()
    assert "\r" not in err.getvalue()
    assert err.getvalue().splitlines() == ["validate torch: 1000/2500 images", "validate torch: 2000/2500 images",
                                           "validate torch: 2500/2500 images"]
    small = io.StringIO()
    monkeypatch.setattr(sys, "stderr", small)
    bar = progress(100, "predict torch")
    bar.update(100)
    bar.close()
    assert small.getvalue() == ""  # a short run says nothing, as the bar stayed off below 64 images
