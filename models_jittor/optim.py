"""SGD and AdamW for Jittor with the semantics of ``torch.optim``, so that a training run matches PyTorch's step
for step. Use them as in PyTorch, with Jittor's backward: ``opt.zero_grad(); opt.backward(loss); opt.step()``.

Jittor conventions overridden here (measured against jittor.optim 1.3.11):
- SGD momentum: Jittor's buffer starts at zero and takes ``(1 - dampening) * g`` on the first step too; here, as in
  PyTorch, the buffer starts as the first gradient, undamped.
- ``step()`` zeroes the gradients in Jittor; here they accumulate over ``backward`` calls until ``zero_grad()``.
- AdamW's bias correction counts ``backward`` calls in Jittor; here it counts ``step`` calls, and the moments update
  as PyTorch's ``lerp``/``addcmul`` do.
Weight decay is coupled (added to the gradient) for SGD and decoupled for AdamW, as in PyTorch. Jittor gives a
parameter the loss does not reach a zero gradient (PyTorch: none, and the step skips it); every parameter of the
zoo's models is reached, so fine-tuning is unaffected.
"""
from __future__ import annotations

from typing import Iterable

from jittor_support.runtime import jt
from jittor.optim import Optimizer


class _TorchStep(Optimizer):
    """The update loop: ``_update(group, i, param, grad)`` per trainable parameter, gradients kept afterwards."""

    def __init__(self, params: Iterable[jt.Var], lr: float) -> None:
        super().__init__(list(params), lr)
        self.steps = 0

    def step(self, loss: jt.Var | None = None, retain_graph: bool = False) -> None:
        if loss is not None:
            self.backward(loss, retain_graph)
        self.steps += 1
        updated = []
        jt.flags.node_order = 1  # as Jittor's own step: updates run in the order they are written
        for group in self.param_groups:
            for i, (p, g) in enumerate(zip(group["params"], group.get("grads", ()))):
                if not p.is_stop_grad():
                    updated += self._update(group, i, p, g)
        jt.sync(updated)  # evaluate now: the next backward overwrites the gradients these read
        jt.flags.node_order = 0

    def _update(self, group: dict, i: int, p: jt.Var, g: jt.Var) -> list[jt.Var]:
        raise NotImplementedError


class SGD(_TorchStep):
    """``torch.optim.SGD``: ``g += wd * p``; ``buf = g`` on the first step, then ``buf = m * buf + (1 - d) * g``;
    ``p -= lr * (g + m * buf if nesterov else buf)``."""

    def __init__(self, params: Iterable[jt.Var], lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, lr)
        self.momentum, self.dampening, self.weight_decay, self.nesterov = momentum, dampening, weight_decay, nesterov
        for group in self.param_groups:
            group["momentum_buffer"] = [None] * len(group["params"])

    def _update(self, group: dict, i: int, p: jt.Var, g: jt.Var) -> list[jt.Var]:
        momentum, dampening = group.get("momentum", self.momentum), group.get("dampening", self.dampening)
        weight_decay = group.get("weight_decay", self.weight_decay)
        if weight_decay:
            g = g + weight_decay * p
        out = [p]
        if momentum:
            buf = group["momentum_buffer"][i]
            if buf is None:
                buf = group["momentum_buffer"][i] = g.clone().stop_grad()
            else:
                buf.update(momentum * buf + (1 - dampening) * g)
            g = g + momentum * buf if group.get("nesterov", self.nesterov) else buf
            out.append(buf)
        p.update(p - group.get("lr", self.lr) * g)
        return out


class AdamW(_TorchStep):
    """``torch.optim.AdamW``: ``p *= 1 - lr * wd``; ``m = lerp(m, g, 1 - b1)``; ``v = b2 * v + (1 - b2) * g * g``;
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`` with t counting steps."""

    def __init__(self, params: Iterable[jt.Var], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        for group in self.param_groups:
            group["exp_avg"] = [jt.zeros(p.shape, p.dtype).stop_grad() for p in group["params"]]
            group["exp_avg_sq"] = [jt.zeros(p.shape, p.dtype).stop_grad() for p in group["params"]]

    def _update(self, group: dict, i: int, p: jt.Var, g: jt.Var) -> list[jt.Var]:
        lr, eps = group.get("lr", self.lr), group.get("eps", self.eps)
        (b1, b2), weight_decay = group.get("betas", self.betas), group.get("weight_decay", self.weight_decay)
        m, v = group["exp_avg"][i], group["exp_avg_sq"][i]
        p.update(p * (1 - lr * weight_decay))
        m.update(m + (1 - b1) * (g - m))
        v.update(v * b2 + g * g * (1 - b2))
        denom = jt.sqrt(v) / (1 - b2 ** self.steps) ** 0.5 + eps
        p.update(p - lr / (1 - b1 ** self.steps) * m / denom)
        return [p, m, v]
