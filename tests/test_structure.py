"""Both frameworks build every variant with the official parameter count and identical keys and shapes, from
model files that mirror each other."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import models_jittor
import models_pytorch
from mlp_zoo.model_specs import variant
from weights_convert.checks import OPTIONAL_SUFFIXES


@pytest.mark.parametrize("name", models_pytorch.list_models())
def test_parameter_count_is_official(name: str):
    with torch.device("meta"):
        model = models_pytorch.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == variant(name).params


@pytest.mark.parametrize("name", models_pytorch.list_models())
def test_jittor_state_mirrors_pytorch(name: str):
    with torch.device("meta"):
        torch_shapes = models_pytorch.state_shapes(models_pytorch.create_model(name))
    jittor_shapes = models_jittor.state_shapes(models_jittor.create_model(name))
    # BatchNorm's step counter exists in PyTorch only
    expected = {k: s for k, s in torch_shapes.items() if not k.endswith(OPTIONAL_SUFFIXES)}
    assert jittor_shapes == expected
    jittor_params = sum(int(np.prod(s)) for k, s in jittor_shapes.items() if "running_" not in k)
    assert jittor_params == variant(name).params


FAMILIES = ("mixer", "vip", "smlp", "convmlp", "registry")
ROOT = Path(__file__).resolve().parents[1]


def _outline(path: Path) -> dict[str, list[str] | None]:
    """A model file's top-level functions (None) and classes, each with its methods and class attributes, Jittor's
    ``execute`` read as PyTorch's ``forward``."""
    outline: dict[str, list[str] | None] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            outline[node.name] = None
        elif isinstance(node, ast.ClassDef):
            members = {"forward" if m.name == "execute" else m.name for m in node.body if isinstance(m, ast.FunctionDef)}
            members |= {t.id for m in node.body if isinstance(m, ast.Assign) for t in m.targets
                        if isinstance(t, ast.Name)}
            outline[node.name] = sorted(members)
    return outline


@pytest.mark.parametrize("family", FAMILIES)
def test_model_files_mirror_each_other(family: str):
    """The PyTorch and Jittor files of a family define the same classes and functions, each class the same
    methods and attributes: what one twin fuses on the CPU, the other computes plainly under the same names."""
    torch_outline = _outline(ROOT / "models_pytorch" / f"{family}.py")
    jittor_outline = _outline(ROOT / "models_jittor" / f"{family}.py")
    assert len(torch_outline) >= 5
    assert torch_outline == jittor_outline


@pytest.mark.parametrize("family", FAMILIES)
def test_only_layers_reach_the_kernels(family: str):
    """A Jittor model file reaches the CPU kernels only through its layers module."""
    assert "cpu_kernels" not in (ROOT / "models_jittor" / f"{family}.py").read_text()
