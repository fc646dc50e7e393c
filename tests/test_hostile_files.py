"""Hostile or careless files (tests/hostile_corpus.py): each is refused in one printable line naming the file,
by the CLI and by create_model in both frameworks with the same message, within a memory bound measured in
the child process; odd tensor types are widened, densified or refused by name; writing is atomic, reports
a failing disk by name, and leaves nothing behind when interrupted."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import CONVERT, ROOT
from hostile_corpus import CORPUS, safetensors, torch_pickle, torch_zip
from weights_convert import CheckpointError, write_atomic
from weights_convert.escaping import escape
from weights_convert.formats import read_file

PROBE = Path(__file__).resolve().parent / "memory_probe.py"
FRONT_ENDS = ("cli", "torch", "jittor")
PREFIX = "mlp-zoo convert: error: "


def memory_bound_mb(file_size: int) -> float:
    return 200 + 4 * file_size / 2**20


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("corpus")
    return {name: build(folder) for name, build in CORPUS.items()}


@pytest.fixture(scope="module")
def probed(corpus, tmp_path_factory) -> dict[str, dict[str, dict]]:
    """front end -> case -> what the probe saw (one child process per front end, all cases in each)."""
    folder = tmp_path_factory.mktemp("probe")
    cases = [{"path": "__control__"}] + [
        {"path": str(path), "dst": str(folder / f"{name}.pkl")} for name, (path, _) in corpus.items()]
    (folder / "cases.json").write_text(json.dumps(cases))
    out: dict[str, dict[str, dict]] = {}
    for front_end in FRONT_ENDS:
        results = folder / f"{front_end}.json"
        r = subprocess.run([sys.executable, str(PROBE), front_end, str(folder / "cases.json"), str(results)],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        found = json.loads(results.read_text())
        out[front_end] = dict(zip(["__control__"] + list(corpus), found))
    return out


def test_memory_probe_sees_an_allocation(probed):
    for front_end in FRONT_ENDS:
        assert probed[front_end]["__control__"]["peak_mb"] >= 90, probed[front_end]["__control__"]


@pytest.mark.parametrize("name", list(CORPUS))
def test_hostile_file_is_refused_in_one_line_within_the_memory_bound(name: str, corpus, probed, tmp_path):
    path, expected = corpus[name]
    bound = memory_bound_mb(path.stat().st_size)
    cli = probed["cli"][name]
    assert cli["rc"] == 2, cli
    line = cli["stderr"].rstrip("\n")
    assert "\n" not in line and line.startswith(PREFIX), line[:500]
    assert line.isprintable() and len(line) <= 2100, line[:500]  # no escapes, CR, bidi; long names cut
    message = line[len(PREFIX):]
    assert escape(str(path)) in message and expected in message, message[:500]
    assert cli["peak_mb"] <= bound, (cli["peak_mb"], bound)
    assert not (tmp_path / f"{name}.pkl").exists()
    for front_end in ("torch", "jittor"):
        seen = probed[front_end][name]
        assert seen["error"] == message, (front_end, seen)  # create_model raises CheckpointError, same text
        assert seen["stderr"] == "", seen["stderr"]  # no warnings printed on the way
        assert seen["peak_mb"] <= bound, (front_end, seen["peak_mb"], bound)


# ------------------------------------------------------------------- element types: widened, densified, refused

REFERENCE = torch.linspace(-300, 300, 24).reshape(4, 6)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2, torch.bfloat16, torch.float16])
def test_narrow_floats_in_torch_files_are_widened_exactly(dtype, tmp_path):
    t = REFERENCE.to(dtype)
    torch.save({"w": t}, tmp_path / "n.pth")
    torch.save({"w": t}, tmp_path / "l.pth", _use_new_zipfile_serialization=False)
    for name in ("n.pth", "l.pth"):
        state, _, notes = read_file(tmp_path / name)
        assert np.array_equal(state["w"], t.float().numpy(), equal_nan=True), name
        if dtype != torch.float16:  # float16 is numpy's own; check_values widens it later with its note
            assert notes == [f"converted {str(dtype)[6:]} weights to float32"]


def test_float8_safetensors_are_widened_not_called_corrupt(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": REFERENCE.to(torch.float8_e4m3fn), "b": REFERENCE.to(torch.float8_e5m2),
               "c": REFERENCE.bfloat16()}, str(tmp_path / "f8.safetensors"))
    state, fmt, notes = read_file(tmp_path / "f8.safetensors")
    assert fmt == "safetensors" and len(notes) == 3
    assert np.array_equal(state["a"], REFERENCE.to(torch.float8_e4m3fn).float().numpy())
    assert np.array_equal(state["b"], REFERENCE.to(torch.float8_e5m2).float().numpy())
    assert np.array_equal(state["c"], REFERENCE.bfloat16().float().numpy())


def test_every_float8_value_matches_torch(tmp_path):
    for dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        t = torch.arange(256, dtype=torch.uint8).view(dtype)
        torch.save({"w": t}, tmp_path / "all.pth")
        state, _, _ = read_file(tmp_path / "all.pth")
        assert np.array_equal(state["w"], t.float().numpy(), equal_nan=True), dtype


def test_sparse_coo_is_densified_with_a_note(tmp_path):
    dense = torch.zeros(5, 7)
    dense[1, 2], dense[4, 6] = 3.0, -1.5
    torch.save({"w": dense.to_sparse(), "h": dense.to_sparse().bfloat16()}, tmp_path / "s.pth")
    state, _, notes = read_file(tmp_path / "s.pth")
    assert np.array_equal(state["w"], dense.numpy()) and np.array_equal(state["h"], dense.numpy())
    assert "densified sparse COO tensors" in notes


# ------------------------------------------------------------------------------------------------ writing

STATE = {"w": np.arange(6, dtype=np.float32)}


def test_full_disk_names_the_destination_and_leaves_nothing(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(CheckpointError, match=r"o\.npz: cannot write \(No space left on device\)"):
        write_atomic(tmp_path / "o.npz", STATE)
    assert list(tmp_path.iterdir()) == []


def test_no_overwrite_is_atomic_between_racing_writers(tmp_path, monkeypatch):
    """Eight writers all pass the up-front check, then race: exactly one creates the file."""
    from weights_convert import writing

    barrier = threading.Barrier(8)
    serialize = writing.serialize

    def in_step(state, fmt):
        data = serialize(state, fmt)
        barrier.wait()
        return data

    monkeypatch.setattr(writing, "serialize", in_step)
    outcomes: list[str] = []

    def write(i: int) -> None:
        try:
            write_atomic(tmp_path / "o.npz", {"w": np.full(3, i, np.float32)})
            outcomes.append("wrote")
        except CheckpointError as e:
            outcomes.append(str(e))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("wrote") == 1, outcomes
    assert all("already exists" in o for o in outcomes if o != "wrote")
    assert [p.name for p in tmp_path.iterdir()] == ["o.npz"]


@pytest.fixture(scope="module")
def small_source(tmp_path_factory) -> Path:
    """A convertible checkpoint (zeros for the smallest variant), cheap to write."""
    from mlp_zoo.tools.convert import expected_shapes

    shapes = expected_shapes("convmlp_s", {})
    path = tmp_path_factory.mktemp("src") / "convmlp_s.npz"
    np.savez(path, **{k: np.zeros(s, np.int64 if k.endswith("num_batches_tracked") else np.float32)
                      for k, s in shapes.items()})
    return path


INTERRUPT = """
import os, signal, sys
sys.path.insert(0, {root!r})
from mlp_zoo.tools import convert
real_fsync = os.fsync
def fsync(fd):
    real_fsync(fd)
    os.kill(os.getpid(), signal.{signal})  # arrives while the temporary file is being written
os.fsync = fsync
sys.exit(convert.main(["torch2jittor", {src!r}, {dst!r}]))
"""


@pytest.mark.parametrize("sig, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_mid_write_leaves_no_file_and_one_line(sig, code, small_source, tmp_path):
    dst = tmp_path / "o.pkl"
    script = INTERRUPT.format(root=str(ROOT), signal=sig, src=str(small_source), dst=str(dst))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == code, r.stderr
    assert r.stderr == f"{PREFIX}stopped by {sig}; no partial output was left behind\n", r.stderr
    assert list(tmp_path.iterdir()) == []  # neither the output nor a .part file


FORKED_WORKER = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
from mlp_zoo.tools import convert
def run(args):  # as Jittor's compile pool does: fork a worker, later end it with SIGTERM
    ready, told = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(told, b"x")
        time.sleep(60)
        os._exit(0)
    os.read(ready, 1)
    os.kill(pid, signal.SIGTERM)
    print(os.waitpid(pid, 0)[1])
    return 0
convert.run = run
sys.exit(convert.main(["torch2jittor", "a.pth", "b.pkl"]))
"""


def test_a_forked_worker_still_dies_on_sigterm():
    r = subprocess.run([sys.executable, "-c", FORKED_WORKER.format(root=str(ROOT))], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == str(signal.SIGTERM.value), (r.stdout, r.stderr)


def test_disk_errors_while_writing_name_the_destination(small_source, tmp_path):
    import resource

    def small_files():  # in the child: files may not grow past 1 MB, and going past is an error, not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    dst = tmp_path / "o.pkl"
    r = subprocess.run([sys.executable, str(CONVERT), "torch2jittor", str(small_source), str(dst)],
                       capture_output=True, text=True, preexec_fn=small_files, timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr == f"{PREFIX}{dst}: cannot write (File too large)\n", r.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_non_utf8_destination_name_is_written_and_printed(small_source, tmp_path):
    dst = os.fsencode(tmp_path) + b"/w\xffights.pkl"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    r = subprocess.run([sys.executable, str(CONVERT), "torch2jittor", str(small_source), dst],
                       capture_output=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(dst)
    assert b"/w\\xffights.pkl: convmlp_s (detected)" in r.stdout, r.stdout


def test_corpus_helpers_build_valid_torch_files(tmp_path):
    """The crafted pickles are torch's own format: a well-formed one loads in torch and here alike."""
    from hostile_corpus import StorageRef, TensorRef

    pkl = torch_pickle({"w": TensorRef(StorageRef("0", torch.FloatStorage, 4), 1, (3,), (1,))})
    path = torch_zip(tmp_path / "ok.pth", pkl, {"0": np.arange(4, dtype="<f4").tobytes()})
    assert torch.load(path)["w"].tolist() == [1.0, 2.0, 3.0]
    assert read_file(path)[0]["w"].tolist() == [1.0, 2.0, 3.0]
    st = safetensors(tmp_path / "ok.safetensors", STATE)
    from safetensors.numpy import load_file

    assert np.array_equal(load_file(str(st))["w"], STATE["w"])


# --------------------------------------------------- property: whatever a header declares, memory stays bounded

def _read_within_bound(path: Path) -> None:
    """Reading ``path`` either succeeds or raises one printable line naming it, within the memory bound."""
    import tracemalloc

    from weights_convert import read_checkpoint

    tracemalloc.start()  # numpy reports its buffers to tracemalloc, so this sees arrays as well as objects
    try:
        read_checkpoint(path)
    except CheckpointError as e:
        message = str(e)
        assert message.isprintable() and str(path) in message, message[:300]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak / 2**20 <= memory_bound_mb(path.stat().st_size), peak


big = st.one_of(st.integers(0, 8), st.integers(0, 2**64))
shapes = st.lists(big, max_size=4).map(tuple)
STORAGE_TYPES = ["FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "BoolStorage",
                 "QInt8Storage", "ByteStorage"]


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(storage_type=st.sampled_from(STORAGE_TYPES), numel=big, stored=st.integers(0, 64), offset=big,
       size=shapes, stride=shapes, legacy=st.booleans())
def test_torch_storage_and_view_headers(storage_type, numel, stored, offset, size, stride, legacy):
    from hostile_corpus import StorageRef, TensorRef, legacy_torch

    ref = StorageRef("0", getattr(torch, storage_type), numel, legacy)
    pkl = torch_pickle({"w": TensorRef(ref, offset, size, stride)})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if legacy:
            path = folder / "m.pth"
            path.write_bytes(legacy_torch(pkl, ["0"], struct.pack("<q", min(numel, 2**63 - 1)) + bytes(stored)))
        else:
            path = torch_zip(folder / "m.pth", pkl, {"0": bytes(stored)})
        _read_within_bound(path)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(dtype=st.sampled_from(["F32", "F64", "BF16", "F8_E4M3", "F8_E5M2", "I64", "BOOL", "F8_E4M3FNUZ", "X"]),
       shape=st.lists(big, max_size=4), begin=big, end=big, stored=st.integers(0, 64),
       header_size=st.one_of(st.none(), big))
def test_safetensors_headers(dtype, shape, begin, end, stored, header_size):
    header = json.dumps({"w": {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}}).encode()
    size = len(header) if header_size is None else header_size % 2**64
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "m.safetensors"
        path.write_bytes(struct.pack("<Q", size) + header + bytes(stored))
        _read_within_bound(path)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(descr=st.sampled_from(["<f4", ">f8", "<f2", "|O", "<U3", "|V8", "<c8", "|b1", "<i8"]), shape=shapes,
       fortran=st.booleans(), stored=st.integers(0, 64), compressed=st.booleans(), declared=st.one_of(st.none(), big))
def test_npz_headers(descr, shape, fortran, stored, compressed, declared):
    from hostile_corpus import npy_header

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "m.npz"
        method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
        with zipfile.ZipFile(path, "w", method) as z:
            z.writestr("w.npy", npy_header(shape, descr, fortran) + bytes(stored))
        if declared is not None:  # what the central directory says the member inflates to
            data = bytearray(path.read_bytes())
            at = data.rfind(b"PK\x01\x02") + 24
            data[at:at + 4] = struct.pack("<I", declared % 2**32)
            path.write_bytes(bytes(data))
        _read_within_bound(path)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(shape=shapes, dtype=st.sampled_from(["f4", "f8", "i8", "V16", "U4", "O"]), stored=st.integers(0, 64),
       how=st.sampled_from(["reconstruct", "frombuffer", "ndarray"]), strides=shapes)
def test_jittor_pickle_array_headers(shape, dtype, stored, how, strides):
    from hostile_corpus import Reduce, jittor_pkl

    np_dtype = np.dtype(dtype)
    if how == "reconstruct":
        array = Reduce(np.core.multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                       (1, shape, np_dtype, False, bytes(stored)))
    elif how == "frombuffer":
        array = Reduce(np.core.numeric._frombuffer, (bytes(stored), np_dtype, shape, "C"))
    else:
        array = Reduce(np.ndarray, (shape, np_dtype, bytes(stored), 0, strides))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _read_within_bound(jittor_pkl(folder / "m.pkl", pickle.dumps({"w": array}, 4)))


def _valid_files() -> dict[str, bytes]:
    """One small, valid file of each format, to be damaged byte by byte."""
    import io

    t = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3).bfloat16()}
    files = {}
    for name, kwargs in (("zip.pth", {}), ("legacy.pth", {"_use_new_zipfile_serialization": False})):
        buf = io.BytesIO()
        torch.save(t, buf, **kwargs)
        files[name] = buf.getvalue()
    payload = pickle.dumps({k: v.float().numpy() for k, v in t.items()}, 4)
    files["j.pkl"] = payload + hashlib.sha1(payload).digest() + b"HCAJSLHD"
    from weights_convert.formats import serialize

    files["s.safetensors"] = serialize({"w": t["w"].numpy()}, "safetensors")
    files["n.npz"] = serialize({"w": t["w"].numpy()}, "npz")
    return files


VALID = _valid_files()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(sorted(VALID)), edits=st.lists(st.tuples(st.integers(-400, 400), st.integers(0, 255)),
                                                           min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(1, 4000)))
def test_damaged_headers_of_each_format(name, edits, cut):
    """Bytes changed near the start (magic, pickle and JSON headers) and the end (zip directory, trailers)."""
    data = bytearray(VALID[name])
    if name == "j.pkl":
        data = data[:-28]
    for at, value in edits:
        data[at % len(data)] = value
    if name == "j.pkl":  # a valid checksum, so that the damage reaches the unpickler
        data += hashlib.sha1(data).digest() + b"HCAJSLHD"
    if cut is not None:
        data = data[:cut]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / name
        path.write_bytes(bytes(data))
        _read_within_bound(path)
