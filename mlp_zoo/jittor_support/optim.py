"""SGD and AdamW for Jittor with PyTorch's semantics, so that a run trains alike in both frameworks.

Jittor's own optimizers differ from ``torch.optim`` in ways that change the trajectory; these classes override:
- SGD ``dampening``: Jittor's momentum buffer starts at zero and is scaled by ``1 - dampening`` on the first step
  too; PyTorch's first buffer is the gradient itself.
- ``step()`` leaves the gradients alone (Jittor's zeroes them): they accumulate over ``backward`` calls until
  ``zero_grad()``, as in PyTorch.
- A stop-grad parameter has no gradient (``grad()`` is None) and is skipped, like one with requires_grad=False.
  Jittor's ``jt.grad`` gives a parameter the loss does not reach a zero gradient, indistinguishable from a real
  zero, so such a parameter is decayed where PyTorch (whose ``.grad`` stays None) skips it: freeze it with
  ``stop_grad()`` to match.
- AdamW counts steps per parameter (Jittor counts ``backward`` calls, which breaks its bias correction under
  gradient accumulation).

Under mpirun (Jittor's MPI mode, ``jt.in_mpi``) they do what Jittor's own optimizers do there, and what DDP does:
every gradient is averaged across ranks (``mpi_all_reduce("mean")``) once per step, before clipping and the
update, and rank 0's parameters are broadcast when the optimizer is built, so that all ranks start alike (Jittor
seeds each rank differently; its own optimizers broadcast only every ``param_sync_iter`` steps, after step 0's
gradients were computed).

Usage, the PyTorch loop with ``opt.backward(loss)`` for ``loss.backward()``::

    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    opt.zero_grad(); opt.backward(loss); opt.step()
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from mlp_zoo.jittor_support import cpu_kernels
from mlp_zoo.jittor_support.runtime import jt


def _in_order(collectives: list[jt.Var]) -> list[jt.Var]:
    """Make MPI collectives run in list order on every rank, as Jittor's own optimizers do: a lazy graph runs
    independent ops in any order, and two ranks matching up different tensors of the same shape silently swap
    their values (seen here: gradients of same-shaped parameters mixed from the second step on)."""
    for before, after in zip(collectives, collectives[1:]):
        after._add_dependency([before])
    return collectives


class Optimizer:
    """Parameter groups, gradients accumulated by ``backward`` and per-parameter state, as in torch.optim."""

    def __init__(self, params: Iterable[jt.Var] | Iterable[dict[str, Any]], defaults: dict[str, Any]) -> None:
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = [{**defaults, **group, "params": list(group["params"])} for group in groups]
        self.state: dict[int, dict[str, Any]] = {}
        self._grads: dict[int, jt.Var] = {}
        self._reduced = False
        if jt.in_mpi:
            broadcast = _in_order([p.mpi_broadcast(0) for p in self._params()])
            for p, value in zip(self._params(), broadcast):
                p.update(value)
            jt.sync(self._params())

    def _params(self) -> list[jt.Var]:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self) -> None:
        self._grads = {}
        self._reduced = False

    def _average_across_ranks(self) -> None:
        """Under MPI, replace each accumulated gradient by its mean over the ranks (once per step)."""
        if jt.in_mpi and not self._reduced:
            means = _in_order([g.mpi_all_reduce("mean") for g in self._grads.values()])
            self._grads = {k: g.stop_grad() for k, g in zip(self._grads, means)}
        self._reduced = True

    def clip_grad_norm(self, max_norm: float) -> float:
        """torch.nn.utils.clip_grad_norm_: scale all gradients by min(1, max_norm / (total 2-norm + 1e-6));
        returns the total norm before clipping (of the rank-averaged gradients under MPI)."""
        self._average_across_ranks()
        if not self._grads:
            return 0.0
        total = jt.sqrt(sum((g.float32() * g.float32()).sum() for g in self._grads.values()))
        coef = jt.minimum(max_norm / (total + 1e-6), 1.0)
        self._grads = {k: (g * coef).stop_grad() for k, g in self._grads.items()}
        return float(total.item())

    def state_dict(self) -> dict[str, Any]:
        """torch.optim's layout: per-parameter state by position, as numpy, and the groups' hyperparameters."""
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {index[k]: {n: v.numpy() if isinstance(v, jt.Var) else v for n, v in s.items()}
                 for k, s in self.state.items()}
        groups = [{k: v for k, v in group.items() if k != "params"} for group in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        params = self._params()
        if len(saved["param_groups"]) != len(self.param_groups) or any(i >= len(params) for i in saved["state"]):
            raise ValueError("optimizer state does not fit these parameters")
        for group, values in zip(self.param_groups, saved["param_groups"]):
            group.update(values)
        self.state = {id(params[i]): {n: jt.array(v).stop_grad() if isinstance(v, np.ndarray) else v
                                      for n, v in s.items()} for i, s in saved["state"].items()}

    def backward(self, loss: jt.Var, retain_graph: bool = False) -> None:
        """Add d(loss)/d(parameter) to each parameter's gradient (PyTorch's ``loss.backward()``)."""
        params = [p for p in self._params() if not p.is_stop_grad()]
        for p, g in zip(params, jt.grad(loss, params, retain_graph)):
            g = g.stop_grad()
            self._grads[id(p)] = self._grads[id(p)] + g if id(p) in self._grads else g
        self._reduced = False

    def grad(self, param: jt.Var) -> jt.Var | None:
        """The parameter's accumulated gradient (PyTorch's ``param.grad``), None if it has none."""
        return self._grads.get(id(param))

    def step(self) -> None:
        self._average_across_ranks()
        # not under jt.no_grad: a parameter updated there would come out stop-grad
        for group in self.param_groups:
            for p in group["params"]:
                g = self._grads.get(id(p))
                if g is not None and not p.is_stop_grad():
                    self._update(p, g, self.state.setdefault(id(p), {}), group)
        # run the updates now: their graphs would otherwise grow until the next fetch
        jt.sync([p for p in self._params() if id(p) in self._grads]
                + [v for state in self.state.values() for v in state.values() if isinstance(v, jt.Var)])

    def _update(self, p: jt.Var, g: jt.Var, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """torch.optim.SGD: ``g += wd * p``; ``buf = g`` on the first step, then ``momentum * buf + (1 - dampening)
    * g``; ``p -= lr * (g + momentum * buf if nesterov else buf)``."""

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def _update(self, p: jt.Var, g: jt.Var, state: dict[str, Any], group: dict[str, Any]) -> None:
        buf = state.get("momentum_buffer")
        if cpu_kernels.enabled(p, g, *([] if buf is None else [buf])):
            new_p, buf = cpu_kernels.sgd_update(p, g, buf, group["lr"], group["weight_decay"], group["momentum"],
                                                group["dampening"], group["nesterov"])
            if buf is not None:
                state["momentum_buffer"] = buf.stop_grad()
            p.update(new_p)
            return
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        if group["momentum"]:
            buf = state.get("momentum_buffer")
            buf = g.clone() if buf is None else group["momentum"] * buf + (1 - group["dampening"]) * g
            state["momentum_buffer"] = buf.stop_grad()
            g = g + group["momentum"] * buf if group["nesterov"] else buf
        p.update(p - group["lr"] * g)


class AdamW(Optimizer):
    """torch.optim.AdamW (without amsgrad): decoupled decay ``p *= 1 - lr * wd``, then Adam with bias
    correction counted per parameter."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _update(self, p: jt.Var, g: jt.Var, state: dict[str, Any], group: dict[str, Any]) -> None:
        (beta1, beta2), lr = group["betas"], group["lr"]
        if not state:
            state.update(step=0, exp_avg=jt.zeros_like(p).stop_grad(), exp_avg_sq=jt.zeros_like(p).stop_grad())
        state["step"] += 1
        state["exp_avg"] = (beta1 * state["exp_avg"] + (1 - beta1) * g).stop_grad()
        state["exp_avg_sq"] = (beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g).stop_grad()
        correction1, correction2 = 1 - beta1 ** state["step"], 1 - beta2 ** state["step"]
        denom = jt.sqrt(state["exp_avg_sq"]) / math.sqrt(correction2) + group["eps"]
        p.update(p * (1 - lr * group["weight_decay"]) - (lr / correction1) * state["exp_avg"] / denom)
