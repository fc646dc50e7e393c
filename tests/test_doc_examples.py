"""Every example in README.md and docs/*.md runs: each fenced ```bash, ```sh and ```python block is executed, in
order, page by page, in a temporary copy of the clone, so that an example cannot drift from the tools again.

What the harness changes, all declared below and shown in every failure message:
- ``STAND_INS``: a published file an example names (``smlp_s.pth``, ``Mixer-B_16.npz``, ``photo.jpg``, ...) is a
  small file in the official layout, written into the page's folder when the page names it, and served as every
  release by a local ``http.server`` given as ``MLPZOO_MIRROR`` (a release named by its name is fetched from it);
- ``SMALL_SETTINGS``: textual edits to a command that keep its meaning and make it short (fewer timed runs, a few
  training steps);
- ``EXCEPTIONS``: the few blocks that cannot run here (they install, run this suite, need a GPU or ImageNet), each
  with its reason; the page says so too. The list is asserted small and each entry must still match a block.

Blocks that only show output, tables or a synopsis are ```text and are not run; a fence without a language is an
error (it would be neither run nor marked as output)."""
from __future__ import annotations

import dataclasses
import functools
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, clone_files, official_manifest, save_torch
from local_server import serving
from release_server import serve as serve_hub

DOCS = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]
RUN = {"bash", "sh", "python"}
NOT_RUN = {"text"}  # output, tables, synopses
BLOCK_TIMEOUT_S = 300


@functools.lru_cache(maxsize=4)
def _state(name: str, num_classes: int | None = None) -> dict[str, np.ndarray]:
    """An official-layout state dict of ``name`` from its manifest (random float32 values, fan-in scaled; drawn
    in float32 as the stand-ins are large), optionally with another classifier width."""
    rng = np.random.default_rng(0)
    state = {}
    for key, shape in official_manifest(name):
        if key.startswith("head.") and num_classes is not None:
            shape = (num_classes, *shape[1:])
        if key.endswith("num_batches_tracked"):
            state[key] = np.array(1, dtype=np.int64)
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        else:
            state[key] = rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(max(np.prod(shape[1:]), 1)))
    return state


def _jax_npz(name: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        from test_mixer import to_jax  # the JAX layout as test_mixer builds it

        np.savez(path, **to_jax(_state(name)))
    return write


def _torch(name: str, wrap: str | None = None, **kwargs) -> Callable[[Path], None]:
    return lambda path: save_torch(path, _state(name, **kwargs), wrap=wrap)


def _native(name: str, **kwargs) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import torch

        import models_pytorch

        torch.save(models_pytorch.create_model(name, **kwargs).state_dict(), path)
    return write


def _safetensors(name: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        from safetensors.numpy import save_file

        save_file(_state(name), str(path))
    return write


def _vip_training_checkpoint(path: Path) -> None:
    state = _state("vip_s7")
    save_torch(path, state, wrap="state_dict", state_dict_ema={k: v + 1 for k, v in state.items()})


def _photo(path: Path) -> None:
    from PIL import Image

    rng = np.random.RandomState(0)
    Image.fromarray(rng.randint(0, 256, (300, 400, 3), dtype=np.uint8)).save(path)


def _image_folder(path: Path) -> None:
    """Two classes of ten small photos each: enough for finetune's 80/20 split and a batch or two."""
    for name in ("cat", "dog"):
        (path / name).mkdir(parents=True)
        for i in range(10):
            _photo(path / name / f"{i:02d}.jpg")


# published file (as the docs name it) -> how the harness writes a stand-in: random values, the official layout
STAND_INS: dict[str, Callable[[Path], None]] = {
    "smlp_s.pth": _torch("smlpnet_s", wrap="model"),                      # SPACH: {'model': ...}
    "smlp_b.pth": _torch("smlpnet_b", wrap="model"),
    "Mixer-B_16.npz": _jax_npz("mixer_b16"),                              # Google's JAX release
    "jx_mixer_b16_224-76587d61.pth": _torch("mixer_b16"),                 # timm: a raw state dict
    "jx_mixer_b16_224.pth": _torch("mixer_b16"),
    "mixer_b16.pth": _torch("mixer_b16"),
    "in21k.pth": _torch("mixer_b16", num_classes=21843),                  # an ImageNet-21k head
    "model.safetensors": _safetensors("mixer_b16"),                       # timm on the Hugging Face Hub
    "vip_s7.pth.tar": _vip_training_checkpoint,                           # official ViP: state_dict(_ema)
    "convmlp_s_imagenet.pth": _torch("convmlp_s"),                        # SHI-Labs: a raw state dict
    "mixer_s16_64.pth": _native("mixer_s16", img_size=64),               # a fine-tune at 64x64 (native keys)
    "photo.jpg": _photo,
    "my_images": _image_folder,                                           # an image folder, a class per folder
}

# (pattern, replacement, why): applied to each shell command (continuation lines joined) before it runs
SMALL_SETTINGS: list[tuple[str, str, str]] = [
    (r"--runs \d+", "--runs 1", "compare: one timed call per framework"),
    (r"(compare(?:\.py)?)(?=\s|$)(?!.*--runs)", r"\1 --runs 1", "compare: one timed call per framework"),
    (r"(compare(?:\.py)?)(?=\s|$)(?!.*--warmup)", r"\1 --warmup 0", "compare: no untimed warm-up calls"),
    (r"--batch \d+", "--batch 2", "compare: batch 2"),
    (r"(compare(?:\.py)?)(?=\s|$)(?!.*--batch )", r"\1 --batch 2", "compare: batch 2"),
    (r"--steps \d+", "--steps 2", "finetune: two optimizer steps"),
    (r"(finetune(?:\.py)?)(?=\s)(?!.*--steps)", r"\1 --steps 2", "finetune: two optimizer steps"),
    (r"--batch-size \d+", "--batch-size 4", "finetune: batch 4"),
    (r"(resolution[-_]study(?:\.py)?)(?=\s|$)", r"\1 --train-steps 2 --finetune-steps 2",
     "resolution-study: two steps of training and of each fine-tune"),
    (r"(finetune(?:\.py)?)(?=\s)(?!.*--batch-size)", r"\1 --batch-size 4", "finetune: batch 4"),
    (r"(--sizes \d+ \d+)(?: \d+)+", r"\1", "compare --sizes: the first two sizes (still a fitted exponent)"),
    (r"--seeds (\d+)(?: \d+)+", r"--seeds \1", "ablation-study: one seed"),
    (r"(ablation[-_]study(?:\.py)?)(?=\s)(?!.*--steps)", r"\1 --steps 2", "ablation-study: two steps a run"),
    (r"(ablation[-_]study(?:\.py)?.*)--epochs \d+", r"\1--epochs 1", "ablation-study: one epoch"),
]

# (file, first line of the block) -> why it does not run here; the page says so next to the block
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("README.md", "make demo   # the main job"): "creates .venv and runs the whole test suite, this test among it",
    ("docs/setup.md", "make demo   # the main job"): "creates .venv and runs the whole test suite, this test among it",
    ("README.md", "pip install .                                                  # or, without a clone:"):
        "installs into the environment; tests/test_package.py installs the wheel into a fresh venv instead",
    ("docs/cuda.md", "make gpu-wheels   # where there is internet: numpy 1.26 (cp312), Jittor's wheel, einops, "
                     "pytest... into wheels/gpu/"): "needs the internet, then a machine with an NVIDIA GPU",
}
MAX_EXCEPTIONS = 5


@dataclasses.dataclass
class Block:
    file: str
    line: int  # of the opening fence, 1-based
    index: int  # 1-based, among the page's fenced blocks
    lang: str
    code: str

    def where(self) -> str:
        return f"{self.file}, block {self.index} (```{self.lang or ''} at line {self.line})"


_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")


def blocks(file: str) -> list[Block]:
    """The fenced blocks of ``file`` in order (indented fences, in lists, included)."""
    lines = (ROOT / file).read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.groups()
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        out.append(Block(file, start + 1, len(out) + 1, info.strip().split(" ")[0].lower() if info.strip() else "",
                         "\n".join(body) + "\n"))
        i += 1
    return out


def small(command: str) -> str:
    """``command`` with every small setting applied, one logical line (continuations joined) at a time."""
    lines = command.replace("\\\n", " ").splitlines()
    out = []
    for line in lines:
        code, sep, comment = line.partition(" #")
        if re.search(r"(tools/\w+\.py|mlp-zoo \w)", code) and "--help" not in code:
            for pattern, replacement, _ in SMALL_SETTINGS:
                code = re.sub(pattern, replacement, code.rstrip())
        out.append(code + sep + comment)
    return "\n".join(out) + "\n"


def test_every_fence_says_what_it_holds():
    unlabelled = [b.where() for f in DOCS for b in blocks(f) if b.lang not in RUN | NOT_RUN]
    assert not unlabelled, ("label each block ```bash / ```python (run by this test) or ```text (output, a "
                            f"synopsis): {unlabelled}")


def test_exceptions_are_few_and_current():
    assert len(EXCEPTIONS) <= MAX_EXCEPTIONS, "the blocks that do not run must stay a short, reviewed list"
    firsts = {(b.file, b.code.splitlines()[0].rstrip()) for f in DOCS for b in blocks(f) if b.lang in RUN}
    stale = [key for key in EXCEPTIONS if key not in firsts]
    assert not stale, f"exceptions naming no block any more (remove them): {stale}"


def _copy_of_clone(dest: Path) -> Path:
    """The clone's files, tracked and new, as git lists them (no `.venv`: see ``_venv_resolved``)."""
    for f in clone_files():
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        (dest / f).write_bytes((ROOT / f).read_bytes())
    return dest


def _venv_resolved(command: str) -> str:
    """``.venv/bin/X`` as this interpreter's venv, by the same path: Jittor keys its compiled core by the path it
    is imported from, so a venv reached through another path (a link in the copy) would compile it again."""
    return re.sub(r"(?<![\w./-])\.venv/bin/", f"{sys.prefix}/bin/", command)


HUB_NAME = re.compile(r"hf-hub:([\w.-]+/[\w.-]+)")  # a Hub repository a page names


class _StandIns:
    """Writes each stand-in once, on demand (from the page's folder or a request to the mirror), thread-safe."""

    def __init__(self, folder: Path):
        self.folder, self.lock = folder, threading.Lock()

    def get(self, name: str) -> Path:
        with self.lock:
            path = self.folder / name
            if not path.exists():
                tmp = self.folder / f".{name}.tmp{Path(name).suffix}"
                STAND_INS[name](tmp)
                tmp.rename(path)
            return path


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text) is not None


def _run_block(block: Block, cwd: Path, env: dict[str, str]) -> None:
    if block.lang == "python":
        cmd, shown = [sys.executable, "-c", block.code], block.code
    else:
        shown = _venv_resolved(small(block.code))
        trap = 'trap \'echo "doc example: failed: $BASH_COMMAND" >&2\' ERR\n'
        cmd = ["bash", "-eo", "pipefail", "-c", trap + shown]
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where()} ran past {BLOCK_TIMEOUT_S} s (as run, small settings applied):\n{shown}")
    if done.returncode != 0:
        pytest.fail(f"{block.where()} exited {done.returncode}; as run (small settings applied, stand-ins "
                    f"{sorted(STAND_INS)}):\n{shown}\n--- stderr (end) ---\n{done.stderr[-4000:]}"
                    f"\n--- stdout (end) ---\n{done.stdout[-1500:]}", pytrace=False)


@pytest.mark.parametrize("file", DOCS)
def test_examples_run(file, tmp_path):
    runnable = [b for b in blocks(file) if b.lang in RUN
                and (file, b.code.splitlines()[0].rstrip()) not in EXCEPTIONS]
    if not runnable:
        return  # a page of prose and output only: test_every_fence_says_what_it_holds covers it
    work = _copy_of_clone(tmp_path / "clone")
    mirror = _StandIns(tmp_path / "mirror")
    mirror.folder.mkdir()
    text = "".join(b.code for b in runnable)
    for name in STAND_INS:
        if _mentions(text, name) and not (work / name).exists():
            target = work / name
            path = mirror.get(name)
            if path.is_dir():
                target.symlink_to(path, target_is_directory=True)
            else:
                os.link(path, target)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPZOO_", "HF_"))}
    env.update(PYTHONPATH=str(work), MPLBACKEND="Agg", MLPZOO_CACHE=str(tmp_path / "cache"),
               HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_DISABLE_TELEMETRY="1")
    hub = serve_hub()  # the Hub for hf-hub: names (huggingface_hub asks HF_ENDPOINT)
    for repo in set(HUB_NAME.findall(text)):
        assert repo.startswith("timm/mixer_b16_224."), f"{file}: no stand-in for hf-hub:{repo}"
        hub.files[f"/{repo}/resolve/main/model.safetensors"] = mirror.get("model.safetensors").read_bytes()
    env["HF_ENDPOINT"] = hub.url
    try:
        with serving(mirror.folder, before=lambda name: mirror.get(name) if name in STAND_INS else None) as url:
            env["MLPZOO_MIRROR"] = url
            for block in runnable:
                _run_block(block, work, env)
    finally:
        hub.shutdown(), hub.server_close()


def test_a_failing_block_names_its_page_block_and_command(tmp_path):
    """The message a merged doc example gets when it breaks: the page, the block, the failing command, its stderr."""
    block = Block("docs/example.md", 12, 3, "bash", "true\nls no_such_file.pth\necho never\n")
    with pytest.raises(pytest.fail.Exception) as failed:
        _run_block(block, tmp_path, dict(os.environ))
    message = str(failed.value)
    assert "docs/example.md, block 3 (```bash at line 12) exited 2" in message
    assert "failed: ls no_such_file.pth" in message and "No such file or directory" in message


def test_small_settings_shorten_commands_and_keep_the_rest():
    assert small(".venv/bin/mlp-zoo compare --models smlpnet_t --batch 8 --json r.json  # a note\n") == \
        ".venv/bin/mlp-zoo compare --warmup 0 --runs 1 --models smlpnet_t --batch 2 --json r.json # a note\n"
    assert small(".venv/bin/python tools/finetune.py --model mixer_s32 \\\n    --steps 60 --batch-size 32\n") == \
        ".venv/bin/python tools/finetune.py --model mixer_s32      --steps 2 --batch-size 4\n"
    assert small(".venv/bin/mlp-zoo finetune --help\nls\n") == ".venv/bin/mlp-zoo finetune --help\nls\n"
    assert small(".venv/bin/mlp-zoo compare --models a b --sizes 128 192 256 320 --runs 3\n") == \
        ".venv/bin/mlp-zoo compare --batch 2 --warmup 0 --models a b --sizes 128 192 --runs 1\n"
    assert small(".venv/bin/mlp-zoo ablation-study --settings default local=false --epochs 3 --seeds 0 1\n") == \
        ".venv/bin/mlp-zoo ablation-study --steps 2 --settings default local=false --epochs 1 --seeds 0\n"
