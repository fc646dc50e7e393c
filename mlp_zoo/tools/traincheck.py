"""One training step of the same weights in PyTorch and Jittor, compared: train-mode logits and loss, every
parameter's gradient, the BatchNorm running statistics after the forward, and the eval logits after one SGD step
(PyTorch's SGD semantics in both: ``torch.optim.SGD`` and ``jittor_support.optim.SGD``)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlp_zoo.tools.pairs import build_jittor, build_torch, jittor_device, random_input

# each parameter's gradients agree within this fraction of the parameter's max |gradient| (PyTorch's)
GRAD_TOL = 1e-4
# ... or, where PyTorch itself is further than that from the float64 gradient, Jittor is at most this many times
# as far from it as PyTorch
FLOAT64_FACTOR = 2.0


@dataclass
class ParamGrad:
    name: str
    diff: float  # max |Jittor - PyTorch|
    scale: float  # max |PyTorch|
    torch_err: float | None = None  # max |PyTorch - float64 PyTorch|, computed only where diff is over GRAD_TOL
    jittor_err: float | None = None  # max |Jittor - float64 PyTorch|
    same_decisions_diff: float | None = None  # max |Jittor - PyTorch taking Jittor's decisions|
    exact_scale: float | None = None  # max |float64 PyTorch|
    model_scale: float = 0.0  # the largest max |PyTorch| over all parameters

    @property
    def relative(self) -> float:
        return self.diff / max(self.scale, 1e-30)

    @property
    def ok(self) -> bool:
        if self.diff <= GRAD_TOL * self.scale:
            return True
        if self.same_decisions_diff is not None and self.same_decisions_diff <= GRAD_TOL * self.scale:
            return True
        if self.torch_err is None or self.torch_err <= GRAD_TOL * self.scale:
            return False
        if self.exact_scale <= self.torch_err:
            # zero in exact arithmetic (e.g. a bias whose shift a norm removes): both are rounding noise, which
            # must be small on the scale of the model's gradients
            return self.diff <= GRAD_TOL * self.model_scale
        return self.jittor_err <= FLOAT64_FACTOR * self.torch_err


@dataclass
class TrainCheck:
    model: str
    logits_diff: float  # train mode
    max_abs_logit: float
    loss_torch: float
    loss_jittor: float
    grads: list[ParamGrad]
    stats_diff: dict[str, float]  # per BatchNorm buffer: max |Jittor - PyTorch| / max |PyTorch| after the forward
    eval_diff: float  # eval-mode logits after one SGD step
    eval_max_abs_logit: float
    flips: int  # ReLU inputs on opposite sides of zero, max-pool windows choosing another input (float32 rounding)
    torch_s: float  # forward, backward and step
    jittor_s: float  # the same, including Jittor's JIT compilation of new op shapes
    notes: list[str] = field(default_factory=list)

    @property
    def worst_grad(self) -> ParamGrad:
        return max(self.grads, key=lambda g: g.relative)

    @property
    def failing_grads(self) -> list[ParamGrad]:
        return [g for g in self.grads if not g.ok]

    @property
    def max_stats_diff(self) -> float:
        return max(self.stats_diff.values(), default=0.0)

    def summary(self) -> str:
        worst = self.worst_grad
        exact = "" if worst.torch_err is None else (f" (from float64: torch {worst.torch_err / worst.scale:.1e}, "
                                                    f"jittor {worst.jittor_err / worst.scale:.1e})")
        return (f"{self.model}: logits {self.logits_diff / self.max_abs_logit:.1e}, loss "
                f"{abs(self.loss_torch - self.loss_jittor):.1e}, worst grad {worst.name} {worst.relative:.1e}{exact}, "
                f"failing {len(self.failing_grads)}/{len(self.grads)}, BN stats {self.max_stats_diff:.1e}, "
                f"eval after step {self.eval_diff / self.eval_max_abs_logit:.1e}, flipped decisions {self.flips}; "
                f"torch {self.torch_s:.1f}s, jittor {self.jittor_s:.1f}s")


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def max_pool_choices(module: Any, x: np.ndarray) -> np.ndarray:
    """The input each window of the PyTorch max pool ``module`` passes on, for input ``x`` (of either framework),
    as a flat index into its channel: the first maximum, as both frameworks choose."""
    import torch
    import torch.nn.functional as F

    kernel, stride, padding = (getattr(module, k) for k in ("kernel_size", "stride", "padding"))
    return F.max_pool2d(torch.from_numpy(x), kernel, stride, padding, return_indices=True)[1].numpy()


def _torch_step(model: Any, x: Any, labels: Any, optimizer: Any,
                decisions: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, float, dict[str, np.ndarray]]:
    """Forward, cross-entropy, backward: (logits, loss, the decisions of each ReLU and max pool). With
    ``decisions``, each ReLU keeps exactly the inputs marked there instead of the positive ones, and each max pool
    passes on the inputs chosen there instead of the largest."""
    import torch
    import torch.nn.functional as F

    seen: dict[str, np.ndarray] = {}

    def hook(name: str) -> Any:
        def record(module: Any, inputs: tuple[Any, ...], output: Any) -> Any:
            x = inputs[0]
            if isinstance(module, torch.nn.ReLU):
                seen[name] = (x > 0).cpu().numpy()
                if decisions is not None:
                    return x * torch.from_numpy(decisions[name]).to(x)
            else:
                seen[name] = max_pool_choices(module, x.detach().cpu().numpy())
                if decisions is not None:
                    chosen = torch.from_numpy(decisions[name]).to(x.device).flatten(2)
                    return x.flatten(2).gather(2, chosen).view_as(output)
            return None
        return record

    handles = [m.register_forward_hook(hook(k)) for k, m in model.named_modules()
               if isinstance(m, (torch.nn.ReLU, torch.nn.MaxPool2d))]
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad()
    loss.backward()
    for handle in handles:
        handle.remove()
    return logits.detach().cpu().numpy(), float(loss.detach()), seen


def train_check(name: str, state: dict[str, np.ndarray], batch: int = 4, seed: int = 0, device: str = "cpu",
                lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 1e-4, **kwargs: Any) -> TrainCheck:
    """Train mode without drop path, cross-entropy on fixed labels, one SGD step, in both frameworks.

    A gradient passes when within ``GRAD_TOL`` of its max in PyTorch; failing that, when PyTorch made to take
    Jittor's decisions gets it within that (a pre-activation within float32 rounding of zero can fall on either
    side, as can the larger of two near-equal inputs of a max pool, and one such element moves a conv's weight
    gradient by ~1e-3 of its max); failing that, where PyTorch is further than ``GRAD_TOL`` from the float64
    gradient, when Jittor is at most ``FLOAT64_FACTOR`` times as far from it, or, where the float64 gradient is
    no larger than PyTorch's error (zero in exact arithmetic, both values rounding noise), when they agree within
    ``GRAD_TOL`` of the model's largest gradient.
    """
    import torch

    import mlp_zoo.jittor_support.optim
    from mlp_zoo.jittor_support.runtime import jt

    kwargs = {"drop_path_rate": 0.0, **kwargs}
    x = random_input(batch, kwargs, seed)
    labels = np.random.RandomState(seed).randint(0, kwargs.get("num_classes", 1000), batch)
    sgd = dict(lr=lr, momentum=momentum, weight_decay=weight_decay)

    start = time.perf_counter()
    tm = build_torch(name, state, device, **kwargs).train()
    topt = torch.optim.SGD(tm.parameters(), **sgd)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(labels).to(device)
    t_logits, t_loss, t_decisions = _torch_step(tm, xt, yt, topt)
    t_grads = {k: p.grad.cpu().numpy() for k, p in tm.named_parameters()}
    t_stats = {k: v.cpu().numpy() for k, v in tm.state_dict().items() if "running_" in k}
    topt.step()
    with torch.no_grad():
        t_eval = tm.eval()(xt).cpu().numpy()
    torch_s = time.perf_counter() - start

    with jittor_device(device):
        start = time.perf_counter()
        jm = build_jittor(name, state, **kwargs)
        jm.train()
        j_decisions: dict[str, jt.Var] = {}

        def record(name: str) -> Any:
            def hook(module: Any, inputs: tuple[Any, ...], output: Any) -> None:  # None: keeps the output
                # the training forward's only; a pool's choices are worked out from its input below
                j_decisions.setdefault(name, inputs[0] > 0 if isinstance(module, jt.nn.ReLU) else inputs[0])
            return hook

        tm_modules = dict(tm.named_modules())
        pools = {k for k, m in tm_modules.items() if isinstance(m, torch.nn.MaxPool2d)}
        for k, m in jm.named_modules():
            if isinstance(m, jt.nn.ReLU) or k in pools:
                m.register_forward_hook(record(k))
        params = {k: p for k, p in jm.named_parameters() if not p.is_stop_grad()}
        jopt = mlp_zoo.jittor_support.optim.SGD(params.values(), **sgd)
        xj = jt.array(x)
        logits = jm(xj)
        loss = jt.nn.cross_entropy_loss(logits, jt.array(labels.astype(np.int32)))
        jopt.backward(loss)
        j_logits, j_loss = logits.numpy(), float(loss.item())
        j_grads = {k: jopt.grad(p) for k, p in params.items()}
        j_grads = {k: None if g is None else g.numpy() for k, g in j_grads.items()}
        j_stats = {k: v.numpy() for k, v in jm.state_dict().items() if "running_" in k}
        j_decisions = {k: max_pool_choices(tm_modules[k], v.numpy()) if k in pools else v.numpy()
                       for k, v in j_decisions.items()}
        jopt.step()
        jm.eval()
        with jt.no_grad():
            j_eval = jm(xj).numpy()
        jittor_s = time.perf_counter() - start

    notes = [f"{k}: no gradient in Jittor" for k, g in j_grads.items() if g is None]
    if set(j_grads) != set(t_grads):
        notes.append(f"parameter sets differ: {sorted(set(j_grads) ^ set(t_grads))}")
    model_scale = max(float(np.abs(g).max()) for g in t_grads.values())
    grads = [ParamGrad(k, float(np.abs(j_grads[k] - g).max()), float(np.abs(g).max()), model_scale=model_scale)
             for k, g in t_grads.items() if j_grads.get(k) is not None]
    flips = sum(int((t_decisions[k] != j_decisions[k]).sum()) for k in t_decisions)
    if flips and any(not g.ok for g in grads):
        same = torch_grads(name, state, x, labels, device, decisions=j_decisions, **kwargs)
        for g in grads:
            g.same_decisions_diff = float(np.abs(j_grads[g.name] - same[g.name]).max())
    if any(not g.ok for g in grads):
        exact = torch_grads(name, state, x, labels, device, float64=True, **kwargs)
        for g in grads:
            if not g.ok:
                g.torch_err = float(np.abs(t_grads[g.name] - exact[g.name]).max())
                g.jittor_err = float(np.abs(j_grads[g.name] - exact[g.name]).max())
                g.exact_scale = float(np.abs(exact[g.name]).max())
    return TrainCheck(
        model=name, logits_diff=float(np.abs(t_logits - j_logits).max()),
        max_abs_logit=float(np.abs(t_logits).max()), loss_torch=t_loss, loss_jittor=j_loss, grads=grads,
        stats_diff={k: _relative(j_stats[k], v) for k, v in t_stats.items() if k in j_stats},
        eval_diff=float(np.abs(t_eval - j_eval).max()), eval_max_abs_logit=float(np.abs(t_eval).max()),
        flips=flips, torch_s=torch_s, jittor_s=jittor_s, notes=notes)


def torch_grads(name: str, state: dict[str, np.ndarray], x: np.ndarray, labels: np.ndarray, device: str = "cpu",
                float64: bool = False, decisions: dict[str, np.ndarray] | None = None,
                **kwargs: Any) -> dict[str, np.ndarray]:
    """PyTorch's gradients of the same training step, in float64 (the reference for both frameworks) or with
    the given ReLU and max-pool decisions."""
    import torch

    model = build_torch(name, state, device, **kwargs).train()
    xt = torch.from_numpy(x).to(device)
    if float64:
        model, xt = model.double(), xt.double()
    _torch_step(model, xt, torch.from_numpy(labels).to(device), torch.optim.SGD(model.parameters(), lr=0.0),
                decisions)
    return {k: p.grad.cpu().numpy() for k, p in model.named_parameters()}
