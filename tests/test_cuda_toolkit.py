"""The CUDA toolkit folder for Jittor: its layout, and the nvcc wrapper that makes CUDA 13 build Jittor's code."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mlp_zoo.jittor_support.cuda_toolkit import CudaToolkitError, assemble, wheel_roots


def fake_toolkit(root: Path, cudart: bool = True) -> Path:
    """A toolkit as the nvidia-cuda-* wheels lay it out, whose nvcc prints its arguments one per line."""
    (root / "bin").mkdir(parents=True)
    (root / "include").mkdir()
    (root / "include" / "cuda_runtime.h").write_text("")
    (root / "lib").mkdir()
    if cudart:
        (root / "lib" / "libcudart.so.13").write_bytes(b"\x7fELF")
    nvcc = root / "bin" / "nvcc"
    nvcc.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    nvcc.chmod(0o755)
    return nvcc


def wheel(root: Path, header: str, lib: str) -> Path:
    (root / "include").mkdir(parents=True)
    (root / "include" / header).write_text("")
    (root / "lib").mkdir()
    (root / "lib" / lib).write_bytes(b"\x7fELF")
    return root


def test_layout_is_what_jittor_reads(tmp_path):
    real = fake_toolkit(tmp_path / "site" / "nvidia" / "cu13")
    cudnn = wheel(tmp_path / "site" / "nvidia" / "cudnn", "cudnn.h", "libcudnn.so.9")
    nvcc = assemble(tmp_path / "tk", real, extra_roots=[cudnn])
    tk = tmp_path / "tk"
    assert nvcc == tk / "bin" / "nvcc"
    # Jittor loads <nvcc>/../lib64/libcudart.so and includes <nvcc>/../include
    assert (tk / "lib64" / "libcudart.so").resolve() == (real.parent.parent / "lib" / "libcudart.so.13").resolve()
    assert (tk / "lib64" / "libcudnn.so").resolve().name == "libcudnn.so.9"
    assert (tk / "include" / "cuda_runtime.h").exists() and (tk / "include" / "cudnn.h").exists()
    assert not list(tmp_path.glob(".tk.*.part"))


def run_wrapper(nvcc: Path, *args: str, **env: str) -> list[str]:
    out = subprocess.run([str(nvcc), *args], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}).stdout
    return out.splitlines()


def test_wrapper_raises_the_cpp_standard_and_drops_fast_math(tmp_path):
    nvcc = assemble(tmp_path / "tk", fake_toolkit(tmp_path / "cu13"), extra_roots=[])
    args = ["-std=c++14", "-Xcompiler", "-std:c++14", "--use_fast_math", "-I/a dir/with spaces", "-x", "cu"]
    assert run_wrapper(nvcc, *args, MLPZOO_CUDA_FAST_MATH="0") == [
        "-std=c++17", "-Xcompiler", "-std=c++17", "-I/a dir/with spaces", "-x", "cu"]
    assert "--use_fast_math" in run_wrapper(nvcc, *args, MLPZOO_CUDA_FAST_MATH="1")


def test_no_cudart_is_refused_and_leaves_nothing(tmp_path):
    real = fake_toolkit(tmp_path / "cu13", cudart=False)
    with pytest.raises(CudaToolkitError, match="libcudart"):
        assemble(tmp_path / "tk", real, extra_roots=[])
    assert not (tmp_path / "tk").exists() and not list(tmp_path.glob(".tk.*"))


def test_wheel_roots_are_found_on_the_search_path(tmp_path):
    fake_toolkit(tmp_path / "site" / "nvidia" / "cu13")
    wheel(tmp_path / "site" / "nvidia" / "cudnn", "cudnn.h", "libcudnn.so.9")
    (tmp_path / "site" / "nvidia" / "__pycache__").mkdir()
    assert wheel_roots([str(tmp_path / "site"), str(tmp_path / "nowhere")]) == [
        tmp_path / "site" / "nvidia" / "cu13", tmp_path / "site" / "nvidia" / "cudnn"]
