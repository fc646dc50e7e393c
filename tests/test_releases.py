"""Releases by name, without internet: a real HTTP server on 127.0.0.1 (tests/release_server.py) plays the
publisher, the mirror and the Hugging Face Hub. Downloads are atomic, resumed with Range, verified (hash, size)
and done once by N processes; each network failure is one line and leaves nothing in the cache; offline reads
the cache only; and create_model(pretrained=True) in each framework gives the logits of the file by path."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, random_from_manifest, save_torch
from mlp_zoo.http_download import DownloadError
from mlp_zoo.model_specs import PUBLISHED, VARIANTS, Release, pretrained_cfg, published, release, releases
from mlp_zoo.release_files import cache_dir, cached_path, fetch, resolve_weights
from release_server import COMMIT, serve

BODY = os.urandom(300_000)
SHA = hashlib.sha256(BODY).hexdigest()
ENV = ("MLPZOO_CACHE", "MLPZOO_MIRROR", "MLPZOO_OFFLINE", "HF_HUB_OFFLINE", "MLPZOO_TIMEOUT", "XDG_CACHE_HOME")


@pytest.fixture
def server():
    s = serve()
    s.files["/pub/w.pth"] = BODY
    yield s
    s.shutdown()
    s.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLPZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def stand_in(server, sha256: str | None = SHA, size: int | None = None, path: str = "/pub/w.pth") -> Release:
    return Release("smlpnet_t.test", "spach", "w.pth", (server.url + path,), "a test", sha256=sha256, size=size)


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def test_table_names_and_cfgs():
    """The names the issue asks for exist; each release's cfg is one of its family's; defaults come first."""
    for name in ("smlpnet_s.spach_in1k", "smlpnet_b.spach_in1k", "convmlp_s.in1k", "convmlp_m.in1k",
                 "convmlp_l.in1k", "vip_s7.in1k", "vip_m7.in1k", "vip_l7.in1k", "mixer_b16.goog_in21k_ft_in1k",
                 "mixer_b16.goog_in21k", "mixer_l16.goog_in21k_ft_in1k", "mixer_l16.goog_in21k"):
        assert name in PUBLISHED
    for r in PUBLISHED.values():
        assert r.variant in VARIANTS and r.cfg in releases(r.variant), r.name
        assert r.urls or r.page, r.name
        if r.name.startswith("mixer_") and r.file.startswith("jx_"):  # timm's name carries the SHA-256 prefix
            assert r.file.endswith(f"-{r.sha256}.pth") and r.hf_hub_id.startswith("timm/")
    assert release("smlpnet_s") is PUBLISHED["smlpnet_s.spach_in1k"]
    assert release("mixer_b16").name == "mixer_b16.goog_in21k_ft_in1k"
    assert pretrained_cfg("mixer_b16", release("mixer_b16.goog_in21k").cfg)["num_classes"] == 21843
    assert published("smlpnet_t") == []


def test_no_release_and_unknown_tag_are_one_line(cache):
    import models_pytorch
    from weights_convert import CheckpointError

    with pytest.raises(CheckpointError, match=r"smlpnet_t has no published release \(variants with one: .*smlpnet_s"):
        models_pytorch.create_model("smlpnet_t", pretrained=True)
    with pytest.raises(CheckpointError, match=r"no release tagged 'x'; published: smlpnet_s.spach_in1k"):
        resolve_weights("smlpnet_s.x", "smlpnet_s")
    with pytest.raises(CheckpointError, match="is a release of smlpnet_s, not of smlpnet_b"):
        resolve_weights("smlpnet_s.spach_in1k", "smlpnet_b")
    assert not cache.exists()


def test_download_verifies_and_caches(server, cache):
    """Downloaded once into <cache>/<name>/<file>; a second fetch reads the cache without a request."""
    r = stand_in(server)
    path = fetch(r, progress=False)
    assert path == cache / "smlpnet_t.test" / "w.pth" == cached_path(r) and path.read_bytes() == BODY
    assert fetch(r) == path and len(server.gets("/pub/w.pth")) == 1
    assert leftovers(cache) == ["w.pth"]
    # the 8-hex prefix timm's file names carry is enough; the size, where known, is checked too
    short = Release("smlpnet_t.prefix", "spach", "w.pth", r.urls, "a test", sha256=SHA[:8], size=len(BODY))
    assert fetch(short).read_bytes() == BODY


def test_default_cache_is_under_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("MLPZOO_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "mlp-zoo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "mlp-zoo"


def test_mirror_serves_every_release_by_file_name(server, cache, monkeypatch):
    server.files["/mirror/w.pth"] = BODY
    monkeypatch.setenv("MLPZOO_MIRROR", server.url + "/mirror/")
    r = stand_in(server, path="/nowhere.pth")  # the publisher's URL is not asked
    assert fetch(r).read_bytes() == BODY
    assert server.gets("/mirror/w.pth") == [None] and not server.gets("/nowhere.pth")


def test_cut_connection_resumes_with_range(server, cache):
    server.faults["/pub/w.pth"] = "cut_once"
    assert fetch(stand_in(server)).read_bytes() == BODY
    half = len(BODY) // 2
    assert server.gets("/pub/w.pth") == [None, f"bytes={half}-"]


@pytest.mark.parametrize("sha256, size, why", [("0" * 64, None, "SHA-256 " + SHA[:64]), (None, 123, "300000 bytes")])
def test_wrong_body_is_refused_and_not_cached(server, cache, sha256, size, why):
    with pytest.raises(DownloadError) as e:
        fetch(stand_in(server, sha256, size))
    assert str(e.value).startswith(f"{server.url}/pub/w.pth: the file differs from the release ({why}")
    assert leftovers(cache) == []


@pytest.mark.parametrize("fault, message", [
    ("refused", "connection refused"),
    ("silent", "no answer within 0.5 s (MLPZOO_TIMEOUT)"),
    ("404", "HTTP 404"),
    ("500", "HTTP 500"),
    ("to_file", "redirected to file:///etc/passwd, which is not HTTP(S)"),
    ("short", "of 300000 bytes; the partial file"),
])
def test_each_network_failure_is_one_line_and_leaves_no_file(server, cache, monkeypatch, fault, message):
    monkeypatch.setenv("MLPZOO_TIMEOUT", "0.5")
    r = stand_in(server)
    if fault == "refused":
        port = server.server_port
        server.shutdown()
        server.server_close()
        r = Release(r.name, r.cfg, r.file, (f"http://127.0.0.1:{port}/pub/w.pth",), "a test")
    else:
        server.faults["/pub/w.pth"] = fault
    with pytest.raises(DownloadError) as e:
        fetch(r)
    assert message in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith(r.urls[0])
    assert not cached_path(r).exists()
    if fault == "short":  # each connection delivers half of what is left; each next one asks for the rest
        assert server.gets("/pub/w.pth") == [None, "bytes=150000-", "bytes=225000-", "bytes=262500-",
                                             "bytes=281250-"]


def test_offline_reads_the_cache_only(server, cache, monkeypatch):
    r = stand_in(server)
    monkeypatch.setenv("MLPZOO_OFFLINE", "1")
    with pytest.raises(DownloadError, match=f"not in the cache and MLPZOO_OFFLINE=1 forbids downloading; put the "
                                            f"file from {r.urls[0]} at {cached_path(r)}$"):
        fetch(r)
    monkeypatch.delenv("MLPZOO_OFFLINE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE=1 forbids"):
        fetch(r)
    assert server.requests == []
    cached_path(r).parent.mkdir(parents=True)
    cached_path(r).write_bytes(BODY)  # what `mlp-zoo releases download` did on a machine with internet
    assert fetch(r) == cached_path(r)


FETCH_AT = """
import sys, time
from mlp_zoo.model_specs import Release
from mlp_zoo.release_files import fetch
r = Release("smlpnet_t.test", "spach", "w.pth", (sys.argv[1],), "a test", sha256=sys.argv[2])
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))
print(fetch(r, progress=False))
"""


def test_processes_at_once_download_one_copy(server, cache):
    """Three ranks started together: one GET, every rank gets the same whole file."""
    server.faults["/pub/w.pth"] = "slow"
    server.files["/pub/w.pth"] = BODY
    start = time.time() + 3
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", FETCH_AT, server.url + "/pub/w.pth", SHA, str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    assert {o[0].strip() for o in outs} == {str(cache / "smlpnet_t.test" / "w.pth")}
    assert len(server.gets("/pub/w.pth")) == 1 and leftovers(cache) == ["w.pth"]


HUB_FETCH = """
import sys
from mlp_zoo.release_files import resolve_weights
print(resolve_weights(sys.argv[1], "mixer_s32"))
"""


def test_hub_names_go_through_huggingface_hub(server, tmp_path):
    """hf-hub:org/repo is fetched by huggingface_hub from HF_ENDPOINT into its own cache (timm's
    model.safetensors, else pytorch_model.bin), then read offline from that cache; a missing repo is one line."""
    server.files["/timm/mixer.t/resolve/main/pytorch_model.bin"] = BODY
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env.update(PYTHONPATH=str(ROOT), HF_ENDPOINT=server.url, HF_HUB_CACHE=str(tmp_path / "hub"),
               HF_HUB_DISABLE_TELEMETRY="1", MLPZOO_CACHE=str(tmp_path / "ours"))

    def run(name: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", HUB_FETCH, name], capture_output=True, text=True,
                              env={**env, **extra}, timeout=60)

    got = run("hf-hub:timm/mixer.t")
    assert got.returncode == 0, got.stderr[-2000:]
    path = Path(got.stdout.strip())
    snapshot = tmp_path / "hub" / "models--timm--mixer.t" / "snapshots" / COMMIT / "pytorch_model.bin"
    assert path == snapshot and path.read_bytes() == BODY and not (tmp_path / "ours").exists()
    requests = len(server.requests)
    again = run("hf-hub:timm/mixer.t", HF_HUB_OFFLINE="1")
    assert again.returncode == 0 and Path(again.stdout.strip()) == snapshot and len(server.requests) == requests
    missing = run("hf-hub:timm/none", MLPZOO_OFFLINE="1")
    last = missing.stderr.strip().splitlines()[-1]
    assert missing.returncode == 1 and "DownloadError: hf-hub:timm/none (MLPZOO_OFFLINE=1: the Hub cache only)" in last


def test_smlpnet_s_by_name_equals_by_path_in_both_frameworks(server, cache, monkeypatch, tmp_path):
    """The issue's "done when": create_model("smlpnet_s", pretrained=True) fetches smlp_s.pth from MLPZOO_MIRROR
    (a stand-in in SPACH's layout) and gives, in each framework, the logits of the file loaded by path."""
    from helpers import pretrained_logits

    path = save_torch(tmp_path / "smlp_s.pth", random_from_manifest("smlpnet_s"), wrap="model", epoch=300)
    server.files["/m/smlp_s.pth"] = path.read_bytes()
    monkeypatch.setenv("MLPZOO_MIRROR", server.url + "/m")
    # batch 2 at 224: the shapes tests/test_equivalence.py runs sMLPNet-S at, so Jittor compiles nothing new
    x = np.random.RandomState(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    by_name = pretrained_logits("smlpnet_s", True, x)
    assert server.gets("/m/smlp_s.pth") == [None]
    assert cached_path(release("smlpnet_s")).read_bytes() == path.read_bytes()
    by_path = pretrained_logits("smlpnet_s", path, x)
    for framework in (0, 1):
        np.testing.assert_array_equal(by_name[framework], by_path[framework])
    assert by_name[0].shape == (2, 1000) and np.abs(by_name[0] - by_name[1]).max() < 1e-3 * np.abs(by_name[0]).max()


def test_tools_take_release_names(server, cache, monkeypatch, tmp_path, capsys):
    """`convert torch2jittor convmlp_s.in1k X.pkl` fetches the release (a stand-in in the official layout) from
    the mirror; `releases list` then shows it cached, `releases download` prints where it is without fetching
    again; predict takes the name as --pretrained and writes --csv FILE and --json FILE together."""
    import json

    from mlp_zoo.tools import predict
    from mlp_zoo.tools import releases as releases_tool
    from test_image_data import PHOTOS, SKIMAGE_DATA

    stand = save_torch(tmp_path / "convmlp_s_imagenet.pth", random_from_manifest("convmlp_s"))
    server.files["/m/convmlp_s_imagenet.pth"] = stand.read_bytes()
    monkeypatch.setenv("MLPZOO_MIRROR", server.url + "/m")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def tool(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "tools" / argv[0]), *argv[1:]], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=300)

    converted = tool("convert.py", "torch2jittor", "convmlp_s.in1k", "c.pkl")
    cached = cached_path(PUBLISHED["convmlp_s.in1k"])
    assert converted.returncode == 0, converted.stderr[-2000:]
    assert f"read {cached}" in converted.stdout and (tmp_path / "c.pkl").is_file()
    assert releases_tool.main(["list", "--model", "convmlp_s"]) == 0
    listed = capsys.readouterr().out
    assert "convmlp_s.in1k  yes" in listed and str(cached) in listed
    assert releases_tool.main(["download", "convmlp_s", "smlpnet_t"]) == 2
    got = capsys.readouterr()
    assert got.out == f"convmlp_s.in1k: {cached}\n" and got.err.startswith("error: smlpnet_t has no published release")
    assert server.gets("/m/convmlp_s_imagenet.pth") == [None]

    out = [str(tmp_path / "p.csv"), str(tmp_path / "p.json")]
    assert predict.main([str(SKIMAGE_DATA / PHOTOS[0]), "--pretrained", "convmlp_s.in1k", "--topk", "2",
                         "--csv", out[0], "--json", out[1], "--workers", "0"]) == 0
    result = json.loads(Path(out[1]).read_text())
    assert result["model"] == "convmlp_s" and result["cfg"]["crop_pct"] == 0.9  # ConvMLP's own evaluation
    rows = Path(out[0]).read_text().splitlines()
    assert rows[0] == "path,framework,rank,class,name,prob" and len(rows) == 3
    assert str(result["predictions"][0]["torch"][0]["class"]) == rows[1].split(",")[3]
