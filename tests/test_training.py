"""Every registered variant trains alike in PyTorch and Jittor: one training step from the same weights gives the
same train-mode logits, loss, gradients and BatchNorm statistics, and the same eval logits after an SGD step."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import models_jittor
import models_pytorch
from conftest import DEVICES, REL_TOL, random_state
from mlp_zoo.jittor_support.runtime import jt
from mlp_zoo.model_specs import variant
from models_jittor import layers as jl
from mlp_zoo.jittor_support.optim import SGD, AdamW
from models_pytorch import layers as tl
from mlp_zoo.tools.pairs import jittor_device
from mlp_zoo.tools.traincheck import _torch_step, train_check

# BatchNorm running statistics after one training forward, relative to the buffer's max (PyTorch's semantics:
# unbiased running variance; Jittor's own BatchNorm is 3e-4 off here)
STATS_TOL = 1e-5


def _slow_if_large(name: str) -> pytest.param:
    return pytest.param(name, marks=[pytest.mark.slow] if variant(name).params > 40e6 else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", [_slow_if_large(n) for n in models_pytorch.list_models()])
def test_training_step_matches(name: str, device: str):
    check = train_check(name, random_state(name), batch=2, device=device)
    print(check.summary())  # the measured figures, in the log
    assert not check.notes, check.notes
    assert check.logits_diff <= REL_TOL * check.max_abs_logit, check.summary()
    assert abs(check.loss_torch - check.loss_jittor) <= REL_TOL * abs(check.loss_torch), check.summary()
    assert not check.failing_grads, (check.summary(), check.failing_grads)
    assert check.max_stats_diff <= STATS_TOL, (check.summary(), check.stats_diff)
    assert check.eval_diff <= REL_TOL * check.eval_max_abs_logit, check.summary()


def test_forced_decisions_route_the_gradient():
    """The checker's "Jittor's decisions" replay: a ReLU keeps exactly the marked inputs and a max pool passes on
    the chosen input, so the gradient reaches those inputs and no others."""
    model = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten())
    x = torch.tensor([[[[1.0, 1.0 + 1e-6], [-1.0, 0.5]], [[2.0, -3.0], [0.25, 4.0]]]], requires_grad=True)
    labels = torch.tensor([0])
    sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)
    logits, _, natural = _torch_step(model, x, labels, sgd)
    assert natural["1"].ravel().tolist() == [1, 3]  # the larger of the near-tie; channel 1's 4.0
    assert logits.ravel().tolist() == pytest.approx([1.0 + 1e-6, 4.0])
    relu = natural["0"].copy()
    relu[0, 1, 1, 1] = False  # the ReLU drops 4.0 ...
    choices = np.array([[[[0]], [[0]]]])  # ... and each window passes on its first input
    x.grad = None
    logits, _, _ = _torch_step(model, x, labels, sgd, decisions={"0": relu, "1": choices})
    assert logits.ravel().tolist() == [1.0, 2.0]
    assert (x.grad[0, :, 0, 0] != 0).all()
    grad = x.grad.clone()
    grad[0, :, 0, 0] = 0
    assert (grad == 0).all()


@pytest.mark.parametrize("name", models_pytorch.list_models())
def test_drop_path_schedules_match(name: str):
    def rates(model, base) -> dict[str, float]:
        return {k: m.drop_prob for k, m in model.named_modules() if isinstance(m, base)}

    with torch.device("meta"):
        torch_rates = rates(models_pytorch.create_model(name, drop_path_rate=0.2), tl.DropPath)
    jittor_rates = rates(models_jittor.create_model(name, drop_path_rate=0.2), jl.DropPath)
    assert jittor_rates.keys() == torch_rates.keys()
    np.testing.assert_allclose(list(jittor_rates.values()), list(torch_rates.values()), rtol=1e-12)
    assert max(torch_rates.values()) == pytest.approx(0.2)


@pytest.mark.parametrize("device", DEVICES)
def test_drop_path_statistics_match(device: str):
    """Masks differ between the frameworks; the rate of dropped samples and the scaling of kept ones must not."""
    n, p = 20000, 0.3
    x = np.ones((n, 3, 2, 2), np.float32)
    torch_out = tl.DropPath(p).train()(torch.from_numpy(x).to(device)).cpu().numpy()
    with jittor_device(device):
        jittor_out = jl.DropPath(p)(jt.array(x)).numpy()
    tolerance = 5 * (p * (1 - p) / n) ** 0.5  # 5 sigma of the dropped fraction
    for out in (torch_out, jittor_out):
        per_sample = out.reshape(n, -1)
        assert (per_sample == per_sample[:, :1]).all()  # whole samples are dropped or kept
        assert set(np.unique(per_sample)) == {0.0, np.float32(1 / (1 - p))}
        assert abs((per_sample[:, 0] == 0).mean() - p) < tolerance
    assert not np.array_equal(torch_out, jittor_out)


def _problem(seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    return ([rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal(5).astype(np.float32)],
            rng.standard_normal((8, 3)).astype(np.float32), rng.standard_normal((8, 5)).astype(np.float32))


def _run_optimizers(torch_opt, jittor_opt, kwargs: dict, steps: int = 4, accumulate: int = 2
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    weights, x, y = _problem()
    tp = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    frozen_t = torch.nn.Parameter(torch.ones(3), requires_grad=False)  # skipped: no decay without a gradient
    jp = [jt.array(w) for w in weights]
    frozen_j = jt.ones(3).stop_grad()
    topt, jopt = torch_opt(tp + [frozen_t], **kwargs), jittor_opt(jp + [frozen_j], **kwargs)
    for step in range(steps):
        topt.zero_grad()
        jopt.zero_grad()
        for i in range(accumulate):  # gradients add up over backward calls until zero_grad
            xs, ys = x[i::accumulate] * (step + 1), y[i::accumulate]
            tloss = ((torch.from_numpy(xs) @ tp[0].T + tp[1] - torch.from_numpy(ys)) ** 2).mean()
            tloss.backward()
            jopt.backward(((jt.array(xs) @ jp[0].transpose() + jp[1] - jt.array(ys)) ** 2).mean())
        topt.step()
        jopt.step()
    assert frozen_t.grad is None and jopt.grad(frozen_j) is None
    np.testing.assert_array_equal(frozen_j.numpy(), np.ones(3))
    return [p.detach().numpy() for p in tp], [p.numpy() for p in jp]


@pytest.mark.parametrize("kwargs", [dict(lr=0.1), dict(lr=0.1, momentum=0.9, weight_decay=1e-2),
                                    dict(lr=0.1, momentum=0.9, dampening=0.5),
                                    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)])
def test_sgd_has_pytorch_semantics(kwargs: dict):
    for t, j in zip(*_run_optimizers(torch.optim.SGD, SGD, kwargs)):
        np.testing.assert_allclose(j, t, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(lr=1e-2), dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)])
def test_adamw_has_pytorch_semantics(kwargs: dict):
    for t, j in zip(*_run_optimizers(torch.optim.AdamW, AdamW, kwargs)):
        np.testing.assert_allclose(j, t, rtol=1e-5, atol=1e-6)


def test_jittors_own_sgd_differs():
    """The reason for jittor_support.optim: if this starts failing, Jittor adopted PyTorch's semantics."""
    w = jt.array(_problem()[0][0])
    jt.optim.SGD([w], lr=0.1, momentum=0.9, dampening=0.5).step((w * w).sum())
    torch_w = torch.nn.Parameter(torch.from_numpy(_problem()[0][0]))
    opt = torch.optim.SGD([torch_w], lr=0.1, momentum=0.9, dampening=0.5)
    (torch_w * torch_w).sum().backward()
    opt.step()
    assert np.abs(w.numpy() - torch_w.detach().numpy()).max() > 1e-2
