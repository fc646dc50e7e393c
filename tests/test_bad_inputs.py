"""A corpus of bad and hostile inputs: each is refused with one clear line, exit 2, no traceback, no output,
an untouched source, and a payload that never ran."""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import random_state
from helpers import digest, run_convert, save_torch


class _Payload:
    """Unpickling this creates a marker file: the test fails if it ever exists."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _jittor_pkl(path: Path, obj) -> Path:
    payload = pickle.dumps(obj, 4)
    path.write_bytes(payload + hashlib.sha1(payload).digest() + b"HCAJSLHD")
    return path


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    state = random_state("smlpnet_t")
    return save_torch(tmp_path_factory.mktemp("good") / "good.pth", state), state


def _case(name: str, tmp: Path, good: tuple[Path, dict[str, np.ndarray]], marker: Path) -> tuple[Path, list, str]:
    """(source file, extra CLI args, text the one-line error must contain) for case ``name``."""
    src, state = good
    if name == "missing file":
        return tmp / "nope.pth", [], "no such file"
    if name == "directory":
        (tmp / "d.pth").mkdir()
        return tmp / "d.pth", [], "is a directory"
    if name == "empty file":
        (tmp / "e.pth").write_bytes(b"")
        return tmp / "e.pth", [], "empty file"
    if name == "random bytes":
        (tmp / "r.pth").write_bytes(np.random.RandomState(0).bytes(4096))
        return tmp / "r.pth", [], "unknown format"
    if name == "truncated torch zip":
        data = src.read_bytes()
        (tmp / "t.pth").write_bytes(data[: len(data) // 2])
        return tmp / "t.pth", [], "corrupt"
    if name == "truncated jittor pkl":
        full = _jittor_pkl(tmp / "full.pkl", state).read_bytes()
        (tmp / "t.pkl").write_bytes(full[: len(full) - 1000] + full[-28:])
        return tmp / "t.pkl", [], "checksum mismatch"
    if name == "truncated safetensors":
        from safetensors.numpy import save_file

        save_file(state, str(tmp / "full.safetensors"))
        data = (tmp / "full.safetensors").read_bytes()
        (tmp / "t.safetensors").write_bytes(data[: len(data) // 2])
        return tmp / "t.safetensors", [], "corrupt"
    if name == "truncated legacy torch":
        torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tmp / "legacy.pth",
                   _use_new_zipfile_serialization=False)
        data = (tmp / "legacy.pth").read_bytes()
        (tmp / "t.pth").write_bytes(data[: len(data) // 2])
        return tmp / "t.pth", [], "corrupt"
    if name == "not a state dict":
        torch.save([1, 2, 3], tmp / "list.pth")
        return tmp / "list.pth", [], "not a state dict"
    if name == "unknown architecture":
        save_torch(tmp / "u.pth", {"encoder.weight": np.zeros((3, 3), np.float32)})
        return tmp / "u.pth", [], "unknown architecture"
    if name == "unregistered variant of a family":
        save_torch(tmp / "v.pth", {k: v for k, v in state.items() if not k.startswith("stages.3.blocks.1.")})
        return tmp / "v.pth", [], "of no registered variant"
    if name == "wrong --model":
        return src, ["--model", "smlpnet_b"], "does not fit smlpnet_b"
    if name == "unknown --model":
        return src, ["--model", "resnet50"], "unknown model 'resnet50'"
    if name == "missing keys":
        save_torch(tmp / "m.pth", {k: v for k, v in state.items() if k != "head.bias"})
        return tmp / "m.pth", ["--model", "smlpnet_t"], "1 missing keys: head.bias"
    if name == "unexpected keys":
        save_torch(tmp / "x.pth", {**state, "extra.weight": np.zeros(3, np.float32)})
        return tmp / "x.pth", ["--model", "smlpnet_t"], "1 unexpected keys: extra.weight"
    if name == "shape mismatch":
        save_torch(tmp / "s.pth", {**state, "head.bias": np.zeros(10, np.float32)})
        return tmp / "s.pth", ["--model", "smlpnet_t"], "head.bias (10,) vs (1000,)"
    if name == "integer weights":
        save_torch(tmp / "i.pth", {**state, "head.bias": np.zeros(1000, np.int32)})
        return tmp / "i.pth", [], "integer dtype"
    if name == "NaN weights":
        bad = state["head.weight"].copy()
        bad[0, 0] = np.nan
        save_torch(tmp / "n.pth", {**state, "head.weight": bad})
        return tmp / "n.pth", [], "contains NaN or Inf"
    if name == "hostile torch zip":
        torch.save({"head.bias": torch.zeros(1), "x": _Payload(marker)}, tmp / "h.pth")
        return tmp / "h.pth", [], "refusing to load posix.system"
    if name == "hostile torch legacy":
        torch.save({"x": _Payload(marker)}, tmp / "hl.pth", _use_new_zipfile_serialization=False)
        return tmp / "hl.pth", [], "refusing to load posix.system"
    if name == "hostile jittor pkl":
        return _jittor_pkl(tmp / "h.pkl", {"x": _Payload(marker)}), [], "refusing to load posix.system"
    if name == "hostile plain pickle":
        (tmp / "hp.pkl").write_bytes(pickle.dumps({"x": _Payload(marker)}))
        return tmp / "hp.pkl", [], "refusing to load posix.system"
    if name == "npz with pickled objects":
        np.savez(tmp / "o.npz", a=np.array([{"x": 1}], dtype=object))
        return tmp / "o.npz", [], "pickled objects"
    raise AssertionError(name)


CASES = ["missing file", "directory", "empty file", "random bytes", "truncated torch zip", "truncated jittor pkl",
         "truncated safetensors", "truncated legacy torch", "not a state dict", "unknown architecture",
         "unregistered variant of a family", "wrong --model", "unknown --model", "missing keys",
         "unexpected keys", "shape mismatch", "integer weights", "NaN weights", "hostile torch zip",
         "hostile torch legacy", "hostile jittor pkl", "hostile plain pickle", "npz with pickled objects"]


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_refused_cleanly(name: str, good, tmp_path: Path):
    marker = tmp_path / "PAYLOAD_RAN"
    src, args, expected = _case(name, tmp_path, good, marker)
    before = digest(src) if src.is_file() else None
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = run_convert("torch2jittor", src, out_dir / "out.pkl", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlp-zoo convert: error: "), r.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in r.stderr
    assert list(out_dir.iterdir()) == []  # no output, no temporary file
    assert not marker.exists()
    if before is not None:
        assert digest(src) == before


def test_nan_weights_convert_when_allowed(good, tmp_path: Path):
    _, state = good
    bad = state["head.weight"].copy()
    bad[0, 0] = np.inf
    save_torch(tmp_path / "n.pth", {**state, "head.weight": bad})
    r = run_convert("torch2jittor", tmp_path / "n.pth", tmp_path / "n.pkl", "--allow-nonfinite")
    assert r.returncode == 0, r.stderr


def test_half_precision_is_widened_with_a_note(good, tmp_path: Path):
    _, state = good
    save_torch(tmp_path / "h.pth", {k: (v.astype(np.float16) if v.dtype == np.float32 else v)
                                    for k, v in state.items()})
    r = run_convert("torch2jittor", tmp_path / "h.pth", tmp_path / "h.pkl")
    assert r.returncode == 0 and "converted float16 weights to float32" in r.stdout, r.stderr


def test_bfloat16_is_widened_with_a_note(good, tmp_path: Path):
    _, state = good
    torch.save({k: (torch.from_numpy(v).bfloat16() if v.dtype == np.float32 else torch.from_numpy(v))
                for k, v in state.items()}, tmp_path / "b.pth")
    r = run_convert("torch2jittor", tmp_path / "b.pth", tmp_path / "b.pkl")
    assert r.returncode == 0 and "converted bfloat16 weights to float32" in r.stdout, r.stderr


def test_trusted_pickle_is_an_explicit_opt_in(tmp_path: Path):
    marker = tmp_path / "PAYLOAD_RAN"
    torch.save({"x": _Payload(marker)}, tmp_path / "h.pth")
    r = run_convert("torch2jittor", tmp_path / "h.pth", tmp_path / "h.pkl", "--trust-pickle")
    assert marker.exists()  # the user asked for it: the pickle ran, which is why it is opt-in
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_debug_shows_the_traceback(tmp_path: Path):
    r = run_convert("torch2jittor", tmp_path / "nope.pth", tmp_path / "o.pkl", "--debug")
    assert r.returncode == 2 and "Traceback" in r.stderr


def test_destination_problems_fail_before_reading(good, tmp_path: Path):
    src, _ = good
    r = run_convert("torch2jittor", src, tmp_path / "no_such_dir" / "o.pkl")
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = run_convert("torch2jittor", src, tmp_path / "o.txt")
    assert r.returncode == 2 and ("unknown output suffix" in r.stderr or "writes a Jittor file" in r.stderr), r.stderr
    copy = tmp_path / "same.pkl"
    shutil.copy(src, copy)
    r = run_convert("torch2jittor", copy, copy, "--force")
    assert r.returncode == 2 and "is the source" in r.stderr


def test_create_model_applies_the_same_checks(good, tmp_path: Path):
    import models_pytorch
    from weights_convert import CheckpointError

    marker = tmp_path / "PAYLOAD_RAN"
    torch.save({"x": _Payload(marker)}, tmp_path / "h.pth")
    with pytest.raises(CheckpointError, match="refusing to load posix.system"):
        models_pytorch.create_model("smlpnet_t", pretrained=tmp_path / "h.pth")
    assert not marker.exists()
    _, state = good
    save_torch(tmp_path / "m.pth", {k: v for k, v in state.items() if k != "head.bias"})
    with pytest.raises(CheckpointError, match="missing keys: head.bias"):
        models_pytorch.create_model("smlpnet_t", pretrained=tmp_path / "m.pth")
