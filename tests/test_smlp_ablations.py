"""sMLPNet's ablation options (``SMLPOptions``): each builds in both frameworks with the same parameters and MACs,
computes the same function (eval, and one training step), and a checkpoint of it rebuilds it through the
converter; the published model's keys stay the official ones."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import models_jittor
import models_pytorch
from conftest import REL_TOL
from helpers import pretrained_logits
from mlp_zoo.model_specs import FAMILIES
from mlp_zoo.model_specs.smlp import OPTIONS_KEY, SMLPOptions, read_record
from mlp_zoo.tools import convert
from mlp_zoo.tools.pairs import cross_check, random_weights
from mlp_zoo.tools.macs import jittor_macs, torch_macs
from mlp_zoo.tools.traincheck import train_check
from weights_convert.errors import CheckpointError

# sMLPNet-T's structure at 32 px with narrow stages: every block kind, in seconds
SMALL = dict(img_size=32, embed_dim=8, depths=(1, 1, 1, 1), num_classes=10)
STATS_TOL = 1e-5  # as tests/test_training.py
# one case per option value; the training step on three mixed ones that hold every value (Jittor compiles each
# new backward shape: one step per option would cost minutes on 2 cores)
CASES = [dict(fusion="sum"), dict(fusion="weighted"), dict(identity=False), dict(axial="serial"), dict(local=False),
         dict(sparse_stages=(False, True, True, False)), dict(token_mixing="dense")]
TRAINED = [dict(fusion="weighted", identity=False, axial="serial"), dict(fusion="sum", local=False),
           dict(token_mixing="dense", sparse_stages=(False, True, True, False))]


def _ids(case: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in case.items())


def _params(model, framework: str) -> int:
    if framework == "torch":
        return sum(p.numel() for p in model.parameters())
    return sum(int(np.prod(v.shape)) for k, v in model.state_dict().items()
               if "running_" not in k and k != OPTIONS_KEY)


@pytest.mark.parametrize("options", CASES + TRAINED[:1], ids=_ids)
def test_option_is_the_same_model_in_both_frameworks(options: dict):
    """Same keys, parameters, MACs, record, and eval logits."""
    kwargs = {**SMALL, **options}
    tm, jm = models_pytorch.create_model("smlpnet_t", **kwargs), models_jittor.create_model("smlpnet_t", **kwargs)
    assert models_jittor.state_shapes(jm) == {k: s for k, s in models_pytorch.state_shapes(tm).items()
                                             if not k.endswith("num_batches_tracked")}
    assert _params(tm, "torch") == _params(jm, "jittor")
    assert torch_macs("smlpnet_t", (32, 32), **kwargs) == jittor_macs("smlpnet_t", (32, 32), **kwargs) > 0
    recorded = {k: list(v) if isinstance(v, tuple) else v for k, v in read_record(tm.state_dict()[OPTIONS_KEY].numpy()).items()}
    assert recorded == SMLPOptions(**options).changed() != {}
    check = cross_check("smlpnet_t", random_weights("smlpnet_t", **kwargs), **kwargs)
    assert check.relative <= REL_TOL


@pytest.mark.parametrize("options", TRAINED, ids=_ids)
def test_option_trains_alike_in_both_frameworks(options: dict):
    """Train-mode logits, loss, every gradient, BatchNorm statistics, and eval logits after an SGD step."""
    # at 64 px and 4 images: a BatchNorm over the 2 values of a 1x1 grid and 2 images would be ill-conditioned
    kwargs = {**SMALL, "img_size": 64, **options}
    check = train_check("smlpnet_t", random_weights("smlpnet_t", **kwargs), batch=4, **kwargs)
    print(check.summary())
    assert not check.notes, check.notes
    assert check.logits_diff <= REL_TOL * check.max_abs_logit, check.summary()
    assert abs(check.loss_torch - check.loss_jittor) <= REL_TOL * abs(check.loss_torch), check.summary()
    assert not check.failing_grads, (check.summary(), check.failing_grads)
    assert check.max_stats_diff <= STATS_TOL, check.summary()
    assert check.eval_diff <= REL_TOL * check.eval_max_abs_logit, check.summary()


def test_each_option_changes_the_model_as_the_paper_says():
    """Parameter and MAC deltas of each option at sMLPNet-T, 224 px, against closed forms."""
    with torch.device("meta"):
        def params(**kw) -> int:
            return sum(p.numel() for p in models_pytorch.create_model("smlpnet_t", **kw).parameters())

        full = params()
        dims, depths, grids = (80, 160, 320, 640), (2, 8, 14, 2), (56, 28, 14, 7)
        fuse = sum(d * 3 * d * n for d, n in zip(dims, depths))
        assert full - params(fusion="sum") == fuse
        assert full - params(fusion="weighted") == fuse - 3 * sum(depths)
        assert full - params(identity=False) == sum(d * d * n for d, n in zip(dims, depths))
        assert full - params(local=False) == sum((2 * d + 9 * d) * n for d, n in zip(dims, depths))  # BN, 3x3
        assert params(axial="serial") == full
        # a stage without global mixing: its BatchNorm, the two axial mixes and the fuse go
        assert full - params(sparse_stages=(False, True, True, True)) == 2 * (2 * 80 + 2 * (56 * 56 + 56) + 3 * 80 * 80)
        # dense: a token MLP N -> N/2 -> N (with biases) per block instead of the two axial mixes and the fuse
        dense = sum(n * (2 * (g * g // 2) * g * g + g * g // 2 + g * g - 2 * (g * g + g) - 3 * d * d)
                    for d, n, g in zip(dims, depths, grids))
        assert params(token_mixing="dense") - full == dense
    # the fuse's 3C^2 per token is what the sum saves in MACs; the serial order costs the same
    assert torch_macs("smlpnet_t") - torch_macs("smlpnet_t", fusion="sum") == sum(
        3 * d * d * n * g * g for d, n, g in zip(dims, depths, grids))
    assert torch_macs("smlpnet_t", axial="serial") == torch_macs("smlpnet_t")


def test_published_model_has_no_record():
    assert OPTIONS_KEY not in models_pytorch.create_model("smlpnet_t", **SMALL).state_dict()
    assert SMLPOptions().record() is None


@pytest.mark.parametrize("options", [dict(fusion="sum", identity=False, axial="serial"),
                                     dict(token_mixing="dense", sparse_stages=(False, True, True, True))],
                         ids=["sum-noid-serial", "dense-from-stage-2"])
def test_checkpoint_rebuilds_the_ablation(tmp_path, options: dict):
    """A PyTorch checkpoint of an ablated sMLPNet-T converts to Jittor and back, and ``create_model(pretrained=)``
    rebuilds the ablation from either file without being told the options or the size."""
    kwargs = dict(img_size=32, num_classes=10, **options)
    state = random_weights("smlpnet_t", **kwargs)
    pth = tmp_path / "ablated.pth"
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, pth)
    pkl = tmp_path / "ablated.pkl"
    assert convert.main(["torch2jittor", str(pth), str(pkl)]) == 0
    back = tmp_path / "back.pth"
    assert convert.main(["jittor2torch", str(pkl), str(back)]) == 0
    x = np.random.RandomState(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        reference = models_pytorch.create_model("smlpnet_t", **kwargs)
        models_pytorch.load_state(reference, state)
        expected = reference.eval()(torch.from_numpy(x)).numpy()
    for path in (pkl, back):
        ours, theirs = pretrained_logits("smlpnet_t", path, x)
        scale = np.abs(expected).max()
        assert np.abs(ours - expected).max() <= REL_TOL * scale
        assert np.abs(theirs - expected).max() <= REL_TOL * scale
    rebuilt = models_pytorch.create_model("smlpnet_t", pretrained=back)
    assert rebuilt.build_options == SMLPOptions(**options)


def test_a_bad_record_is_refused(tmp_path, capsys):
    state = random_weights("smlpnet_t", img_size=32, num_classes=10, axial="serial")
    describe = FAMILIES["smlp"].describe
    assert describe(state)[1]["axial"] == "serial"
    for record, why in ((np.frombuffer(b'{"fusion": "weighted"}', np.uint8).astype(np.float32), "disagrees"),
                        (np.full(5, 3.5, np.float32), "not a record"),
                        (np.frombuffer(b'{"colour": 1}', np.uint8).astype(np.float32), "not a record")):
        with pytest.raises(ValueError, match=why):
            describe({**state, OPTIONS_KEY: record})
        path = tmp_path / "bad.pth"
        torch.save({k: torch.from_numpy(v) for k, v in {**state, OPTIONS_KEY: record}.items()}, path)
        assert convert.main(["torch2jittor", str(path), str(tmp_path / "never.pkl")]) == 2
        assert f"bad.pth: its '{OPTIONS_KEY}' record" in capsys.readouterr().err or why != "disagrees"
        assert not (tmp_path / "never.pkl").exists()
        with pytest.raises(CheckpointError, match="bad.pth: does not fit"):  # built as the file's keys allow
            models_pytorch.create_model("smlpnet_t", pretrained=path)


def test_bad_options_are_refused():
    for kwargs, why in ((dict(fusion="max"), "fusion must be one of"), (dict(axial="diagonal"), "axial must be"),
                        (dict(token_mixing="full"), "token_mixing must be"), (dict(local="no"), "local must be"),
                        (dict(sparse_stages=(True, True)), "2 entries for 4 stages"),
                        (dict(local=False, sparse_stages=(True, False, True, True)), "no token mixing"),
                        (dict(token_mixing="dense", fusion="sum"), "not token_mixing='dense'")):
        for create in (models_pytorch.create_model, models_jittor.create_model):
            with pytest.raises(ValueError, match=why):
                create("smlpnet_t", **SMALL, **kwargs)
