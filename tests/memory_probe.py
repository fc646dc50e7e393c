"""Run in a child process by test_hostile_files: reads each file as a user would, once per case, and reports
what it printed or raised and the peak memory it took, measured from the kernel's high-water mark.

  python memory_probe.py FRONT_END CASES.json RESULTS.json

FRONT_END is ``cli`` (tools/convert.py's main), ``torch`` or ``jittor`` (that framework's create_model).
Imports and one warm-up case (a small file that reaches model building) come first, so that a case's peak
holds what that file costs, not one-off set-up; the high-water mark is reset before each case.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODEL = "convmlp_s"  # the smallest variant: create_model builds it before fitting the weights


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def _run(front_end: str, case: dict) -> dict:
    from weights_convert import CheckpointError

    if case["path"] == "__control__":  # proves the measurement sees an allocation of 100 MB
        import numpy as np

        block = np.ones(100 << 20, np.uint8)
        return {"allocated": int(block.sum())}
    if front_end == "cli":
        from mlp_zoo.tools import convert

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = convert.main(["torch2jittor", case["path"], case["dst"], "--model", MODEL])
        return {"rc": rc, "stderr": err.getvalue()}
    models = __import__(f"models_{'pytorch' if front_end == 'torch' else 'jittor'}")
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            models.create_model(MODEL, pretrained=case["path"])
        return {"error": None, "stderr": err.getvalue()}
    except CheckpointError as e:
        return {"error": str(e), "stderr": err.getvalue()}
    except Exception as e:  # reported, so that the test shows what escaped
        return {"error": None, "escaped": f"{type(e).__name__}: {e}"[:500], "stderr": err.getvalue()}


def main() -> None:
    front_end, cases_file, results_file = sys.argv[1:]
    import numpy as np

    from weights_convert.formats import serialize

    with tempfile.TemporaryDirectory() as tmp:  # imports and first-use set-up happen here, unmeasured
        warm_up = Path(tmp) / "warm_up.safetensors"
        warm_up.write_bytes(serialize({"x": np.zeros(1, np.float32)}, "safetensors"))
        _run(front_end, {"path": str(warm_up), "dst": str(Path(tmp) / "o.pkl")})
    results = []
    for case in json.loads(Path(cases_file).read_text()):
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
        before = _rss_kb("VmRSS")
        result = _run(front_end, case)
        result["peak_mb"] = (_rss_kb("VmHWM") - before) / 1024
        results.append(result)
    Path(results_file).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
