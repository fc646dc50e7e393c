"""Property: whatever a state dict suffers (keys dropped, renamed, reshaped, retyped, added), the converter
either converts it exactly or refuses it with one line; it never crashes and never leaves a partial file."""
from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import random_state
from helpers import save_torch
from mlp_zoo.tools import convert
from weights_convert import read_checkpoint

STATE = random_state("smlpnet_t")
KEYS = sorted(STATE)

mutation = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(KEYS)),
    st.tuples(st.just("rename"), st.sampled_from(KEYS), st.sampled_from(["x", ".1", "module.", "_ema"])),
    st.tuples(st.just("reshape"), st.sampled_from(KEYS), st.integers(1, 3)),
    st.tuples(st.just("retype"), st.sampled_from(KEYS),
              st.sampled_from(["float16", "float64", "int32", "bool", "complex64"])),
    st.tuples(st.just("add"), st.text("abcdefgh.", min_size=1, max_size=12)),
)


def mutate(state: dict[str, np.ndarray], ops: list[tuple]) -> dict[str, np.ndarray]:
    out = dict(state)
    for op in ops:
        kind, key = op[0], op[1]
        if kind != "add" and key not in out:
            continue
        if kind == "drop":
            del out[key]
        elif kind == "rename":
            out[key + op[2]] = out.pop(key)
        elif kind == "reshape":
            out[key] = np.zeros(out[key].shape + (op[2],), out[key].dtype)
        elif kind == "retype":
            out[key] = out[key].astype(op[2])
        else:
            out[key] = np.zeros(2, np.float32)
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=3), st.booleans())
def test_mutated_state_converts_exactly_or_is_refused_cleanly(ops: list[tuple], detect: bool) -> None:
    state = mutate(STATE, ops)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "src.pth", Path(tmp) / "out"
        out.mkdir()
        save_torch(src, state)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            model = [] if detect else ["--model", "smlpnet_t"]
            rc = convert.main(["torch2jittor", str(src), str(out / "o.pkl"), *model])
        files = list(out.iterdir())
        if rc == 0:
            assert [f.name for f in files] == ["o.pkl"]
            written = read_checkpoint(out / "o.pkl").state
            for key, value in written.items():
                if key in state and value.dtype.kind == "f":
                    assert np.array_equal(value, state[key].astype(np.float32)), key
        else:
            assert rc == 2 and files == []
            lines = err.getvalue().strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("mlp-zoo convert: error: ")
            # a refusal names the file; an exception type in the line would mean something inside crashed
            assert str(src) in lines[0] and "Error: " not in lines[0], lines[0]
