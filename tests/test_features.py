"""Downstream use, for every variant in both frameworks: ``forward_intermediates`` returns the same NCHW feature
maps, and fine-tuning loads everything but the classifier (timm's ``num_classes`` and ``reset_classifier``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import models_jittor
import models_pytorch
from conftest import DEVICES, REL_TOL, random_state
from helpers import run_convert, save_torch
from mlp_zoo.jittor_support.runtime import jt
from mlp_zoo.model_specs import variant
from mlp_zoo.tools.pairs import build_jittor, build_torch, jittor_device, random_input

NAMES = [pytest.param(n, marks=pytest.mark.slow) if n.endswith(("_l7", "_l16", "_l32", "_l")) else n
         for n in models_pytorch.list_models()]
HEAD = ("head.weight", "head.bias")
IN21K = 21843  # timm's ImageNet-21k Mixer releases


def expected_shapes(name: str) -> list[tuple[int, int, int]]:
    """(C, H, W) of every stage (sMLPNet, ConvMLP) or block (Mixer, ViP) output at 224."""
    info = variant(name)
    c = info.config
    if info.family == "smlp":
        return [(c["embed_dim"] * 2 ** i, 56 >> i, 56 >> i) for i in range(len(c["depths"]))]
    if info.family == "mixer":
        return [(c["embed_dim"], 224 // c["patch_size"], 224 // c["patch_size"])] * c["depth"]
    if info.family == "vip":
        side = 224 // c["patch_size"]
        return [(dim, side >> s, side >> s) for s, (depth, dim) in enumerate(zip(c["depths"], c["embed_dims"]))
                for _ in range(depth)]
    return [(c["tokenizer_dim"], 56, 56)] + [(dim, 28 >> i, 28 >> i) for i, dim in enumerate(c["dims"])]


def logits_from_last(model: torch.nn.Module, family: str, last: torch.Tensor) -> torch.Tensor:
    """The model's logits computed from its last intermediate output (what the final norm and head take)."""
    if family == "mixer":
        return model.forward_head(model.norm(last.flatten(2).transpose(1, 2)))
    if family == "smlp":
        return model.forward_head(model.norm(last.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
    return model.forward_head(model.norm(last.permute(0, 2, 3, 1)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_forward_intermediates_match(name: str, device: str):
    state = random_state(name)
    x = random_input(1, {})
    with jittor_device(device):
        tm, jm = build_torch(name, state, device), build_jittor(name, state)
        xt = torch.from_numpy(x).to(device)
        with torch.no_grad():
            ours = tm.forward_intermediates(xt)
            logits = tm(xt)
            from_last = logits_from_last(tm, variant(name).family, ours[-1])
            last_two = tm.forward_intermediates(xt, indices=2)
        with jt.no_grad():
            theirs = [f.numpy() for f in jm.forward_intermediates(jt.array(x), indices=[0, -1])]
    assert [tuple(f.shape) for f in ours] == [(1, *s) for s in expected_shapes(name)]
    # the features are the network's own: its logits follow from the last one
    assert torch.allclose(from_last, logits, atol=1e-5 * float(logits.abs().max()))
    assert len(last_two) == 2 and all(torch.equal(a, b) for a, b in zip(last_two, ours[-2:]))
    for a, b in zip((ours[0].cpu().numpy(), ours[-1].cpu().numpy()), theirs):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= REL_TOL * np.abs(a).max(), name


def test_bad_indices_are_refused():
    model = models_pytorch.create_model("mixer_s32")
    for bad in (0, 9, [8], [-9], []):
        with pytest.raises(ValueError, match="indices"):
            model.forward_intermediates(torch.zeros(1, 3, 224, 224), indices=bad)


def numpy_state(model) -> dict[str, np.ndarray]:
    return {k: (v.detach().numpy() if isinstance(v, torch.Tensor) else v.numpy()) for k, v in
            model.state_dict().items()}


def seeded(framework: str, build):
    """``build()`` after seeding the framework's generator (PyTorch then draws the same init for the same seed)."""
    torch.manual_seed(0) if framework == "torch" else jt.set_global_seed(0)
    return build()


# the head handling is the family's (its classifier keys and feature width), the loading shared: the smallest variant
# of each family runs the whole scenario (two files of up to 900 MB and eight builds for a Large one), and every
# variant has the head it relies on (test_every_variant_has_the_head_fine_tuning_replaces)
SMALLEST_PER_FAMILY = ["smlpnet_t", "mixer_s32", "vip_s14", "convmlp_s"]


@pytest.mark.parametrize("name", NAMES)
def test_every_variant_has_the_head_fine_tuning_replaces(name: str):
    """The classifier is exactly ``head.weight`` (num_classes, features) and ``head.bias``, in both frameworks, at
    any class count; nothing else changes shape with it (the keys fine-tuning keeps are the 1000-class model's)."""
    with torch.device("meta"):
        shapes = {n: {k: tuple(v.shape) for k, v in models_pytorch.create_model(name, num_classes=n).state_dict().items()}
                  for n in (1000, 10)}
    jittor = {k: tuple(v.shape) for k, v in models_jittor.create_model(name, num_classes=10).state_dict().items()}
    features = shapes[1000]["head.weight"][1]
    assert {k: v for k, v in shapes[10].items() if not k.endswith("num_batches_tracked")} == jittor  # PyTorch's counter
    assert shapes[10]["head.weight"] == (10, features) and shapes[10]["head.bias"] == (10,)
    assert {k: v for k, v in shapes[10].items() if k not in HEAD} == \
        {k: v for k, v in shapes[1000].items() if k not in HEAD}


@pytest.mark.parametrize("name", SMALLEST_PER_FAMILY)
def test_fine_tune_loading(name: str, tmp_path: Path):
    state = random_state(name)
    features = state["head.weight"].shape[1]
    rng = np.random.RandomState(0)
    in21k = {**state, "head.weight": rng.standard_normal((IN21K, features)).astype(np.float32),
             "head.bias": rng.standard_normal(IN21K).astype(np.float32)}
    path, path21k = save_torch(tmp_path / "in1k.pth", state), save_torch(tmp_path / "in21k.pth", in21k)
    for framework, zoo in (("torch", models_pytorch), ("jittor", models_jittor)):
        # another class count: everything but the classifier loads exactly, the classifier is the fresh one
        with pytest.warns(UserWarning, match=r"num_classes=10, the file has 1000: dropped head\.weight, head\.bias"):
            tuned = numpy_state(seeded(framework, lambda: zoo.create_model(name, pretrained=path, num_classes=10)))
        fresh = numpy_state(seeded(framework, lambda: zoo.create_model(name, num_classes=10)))
        assert tuned.keys() == fresh.keys() and tuned["head.weight"].shape == (10, features)
        for key, value in tuned.items():
            if key not in HEAD:
                np.testing.assert_array_equal(value, state[key], err_msg=f"{framework} {key}")
            elif framework == "torch":
                np.testing.assert_array_equal(value, fresh[key], err_msg=key)
            else:  # Jittor draws lazily, in the order values are first used: the same init, other draws
                assert np.abs(value).max() <= 2 * np.abs(fresh[key]).max(), key
                assert key != "head.weight" or abs(value.std() - fresh[key].std()) <= 0.1 * fresh[key].std()
        # no num_classes: the file's count; 0: features only
        model = zoo.create_model(name, pretrained=path21k)
        assert model.num_classes == IN21K
        np.testing.assert_array_equal(numpy_state(model)["head.weight"], in21k["head.weight"])
        with pytest.warns(UserWarning, match="dropped head.weight, head.bias; the model has no classifier"):
            headless = zoo.create_model(name, pretrained=path21k, num_classes=0)
        assert not set(HEAD) & set(numpy_state(headless))
        headless.reset_classifier(7)
        assert headless.num_classes == 7 and numpy_state(headless)["head.weight"].shape == (7, features)
        model.reset_classifier(0)
        assert model.num_classes == 0 and not set(HEAD) & set(numpy_state(model))


def test_strictness_is_kept_when_fine_tuning(tmp_path: Path):
    from weights_convert import CheckpointError

    state = random_state("mixer_s32")
    path = save_torch(tmp_path / "cut.pth", {k: v for k, v in state.items() if k != "norm.bias"})
    with pytest.raises(CheckpointError, match="missing keys: norm.bias"), pytest.warns(UserWarning):
        models_pytorch.create_model("mixer_s32", pretrained=path, num_classes=10)


def test_converter_keeps_the_class_count_of_a_named_model(tmp_path: Path):
    state = random_state("mixer_s32")
    state["head.weight"] = np.zeros((IN21K, state["head.weight"].shape[1]), np.float32)
    state["head.bias"] = np.zeros(IN21K, np.float32)
    src = save_torch(tmp_path / "in21k.pth", state)
    for model in ([], ["--model", "mixer_s32"]):
        r = run_convert("torch2jittor", src, tmp_path / f"out{len(model)}.pkl", *model)
        assert r.returncode == 0 and f"num_classes={IN21K}" in r.stdout, r.stderr
