"""Every registered variant computes the same logits in PyTorch and Jittor with the same weights."""
from __future__ import annotations

import pytest

import models_jittor
import models_pytorch
from conftest import DEVICES, REL_TOL, random_state
from mlp_zoo.tools.pairs import cross_check


def test_both_registries_hold_the_same_models():
    assert models_pytorch.list_models() == models_jittor.list_models()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", models_pytorch.list_models())
def test_logits_match(name: str, device: str):
    check = cross_check(name, random_state(name), batch=2, device=device)
    assert check.max_abs_diff <= REL_TOL * check.max_abs_logit, check
    # the logits must depend on the input far more than the frameworks differ: an input-blind net matches trivially
    assert check.input_sensitivity > 100 * check.max_abs_diff, check
