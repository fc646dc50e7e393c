"""tools/convert.py as a user meets it: auto-detection, --verify, round trips, refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import random_state
from helpers import digest, run_convert, save_torch


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A PyTorch sMLPNet-T checkpoint in SPACH's training container ('model' + extras)."""
    path = tmp_path_factory.mktemp("ckpt") / "smlp_t.pth"
    state = random_state("smlpnet_t")
    save_torch(path, state, wrap="model", epoch=3)
    return path, state


def test_torch2jittor_detects_and_verifies(tiny_ckpt, tmp_path):
    src, _ = tiny_ckpt
    r = run_convert("torch2jittor", src, tmp_path / "t.pkl", "--verify")
    assert r.returncode == 0, r.stderr
    assert "smlpnet_t (detected)" in r.stdout and "entry 'model'" in r.stdout
    line = next(l for l in r.stdout.splitlines() if l.startswith("verify:"))
    assert line.endswith("OK")
    assert float(line.split("max abs diff ")[1].split()[0]) < 1e-4


def test_round_trip_is_bit_exact(tiny_ckpt, tmp_path):
    src, state = tiny_ckpt
    assert run_convert("torch2jittor", src, tmp_path / "t.pkl").returncode == 0
    for dst in ("back.pth", "back.safetensors"):
        r = run_convert("jittor2torch", tmp_path / "t.pkl", tmp_path / dst)
        assert r.returncode == 0, r.stderr
    back = torch.load(tmp_path / "back.pth")
    from safetensors.numpy import load_file

    back_st = load_file(str(tmp_path / "back.safetensors"))
    assert back.keys() == state.keys() == back_st.keys()
    for k, v in state.items():
        assert back[k].numpy().dtype == v.dtype and np.array_equal(back[k].numpy(), v), k
        assert np.array_equal(back_st[k], v), k


def test_converted_file_loads_in_each_framework(tiny_ckpt, tmp_path):
    import models_jittor
    import models_pytorch

    src, state = tiny_ckpt
    assert run_convert("torch2jittor", src, tmp_path / "t.pkl").returncode == 0
    jm = models_jittor.create_model("smlpnet_t", pretrained=tmp_path / "t.pkl")
    for k, v in jm.state_dict().items():
        assert np.array_equal(v.numpy(), state[k]), k
    assert run_convert("jittor2torch", tmp_path / "t.pkl", tmp_path / "t.pth").returncode == 0
    tm = models_pytorch.create_model("smlpnet_t", pretrained=tmp_path / "t.pth")
    for k, v in tm.state_dict().items():
        assert np.array_equal(v.numpy(), state[k]), k


def test_explicit_model_and_wrong_model(tiny_ckpt, tmp_path):
    src, _ = tiny_ckpt
    ok = run_convert("torch2jittor", src, tmp_path / "a.pkl", "--model", "smlpnet_t")
    assert ok.returncode == 0 and "smlpnet_t (given)" in ok.stdout
    wrong = run_convert("torch2jittor", src, tmp_path / "b.pkl", "--model", "smlpnet_s")
    assert wrong.returncode == 2
    assert "does not fit smlpnet_s" in wrong.stderr and "Traceback" not in wrong.stderr
    assert not (tmp_path / "b.pkl").exists()


def test_existing_destination_needs_force(tiny_ckpt, tmp_path):
    src, _ = tiny_ckpt
    dst = tmp_path / "t.pkl"
    dst.write_bytes(b"keep me")
    r = run_convert("torch2jittor", src, dst)
    assert r.returncode == 2 and "already exists" in r.stderr and dst.read_bytes() == b"keep me"
    before = digest(src)
    assert run_convert("torch2jittor", src, dst, "--force").returncode == 0
    assert dst.read_bytes() != b"keep me" and digest(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.pkl"]  # no temporary file left behind


def test_direction_and_suffix_must_agree(tiny_ckpt, tmp_path):
    src, _ = tiny_ckpt
    r = run_convert("torch2jittor", src, tmp_path / "t.pth")
    assert r.returncode == 2 and "writes a Jittor file" in r.stderr


def test_help_documents_every_option():
    r = run_convert("--help")
    assert r.returncode == 0
    for option in ("torch2jittor", "jittor2torch", "--model", "--verify", "--force", "--trust-pickle",
                   "--allow-nonfinite", "--ema", "--debug"):
        assert option in r.stdout


def test_a_module_state_dict_as_torch_saves_it_loads(tmp_path):
    """torch.save(model.state_dict()) (how timm's releases were made) pickles an OrderedDict whose _metadata
    attribute is set on unpickling: not weights, but the safe reader must accept it."""
    import models_pytorch

    model = models_pytorch.create_model("mixer_s32")
    assert hasattr(model.state_dict(), "_metadata")
    torch.save(model.state_dict(), tmp_path / "release.pth")
    loaded = models_pytorch.create_model("mixer_s32", pretrained=tmp_path / "release.pth")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
