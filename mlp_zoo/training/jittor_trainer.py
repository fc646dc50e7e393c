"""Jittor's side of the loop, mirroring torch_trainer: jittor_support.optim (torch.optim's semantics; under
mpirun it averages gradients across ranks and starts from rank 0's weights), Jittor's auto mixed precision for
--amp (CUDA only), an EMA of the state dict, checkpoints with jt.save (read back by weights_convert's safe
unpickler, as PyTorch's with ``weights_only=True``)."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mlp_zoo.jittor_support.optim import SGD, AdamW
from mlp_zoo.jittor_support.runtime import jt
from jittor import nn
from mlp_zoo.model_specs.pretrained_cfg import with_cfg
from mlp_zoo.training.checkpoint import write_atomically
from mlp_zoo.training.jittor_sync_batchnorm import synchronise_batchnorm
from mlp_zoo.training.stand_in import blank_batch


class JittorTrainer:
    """One model trained on numpy batches; under mpirun each rank holds a replica and takes its shard."""

    framework = "jittor"

    def __init__(self, model: nn.Module, args: Any) -> None:
        self.args, self.model = args, model
        self.world_size, self.rank = (jt.world_size, jt.rank) if jt.in_mpi else (1, 0)
        # BatchNorm statistics of the global batch, as DDP's side does with torch_sync_batchnorm
        self.synced_norms = synchronise_batchnorm(model) if self.world_size > 1 else 0
        if args.amp:
            if not jt.has_cuda or args.device == "cpu":
                raise SystemExit("--amp in Jittor: auto_mixed_precision_level acts on CUDA only (on the CPU Jittor "
                                 "would train in float32 anyway); drop --amp or run on a GPU")
            jt.flags.auto_mixed_precision_level = 5
        if jt.has_cuda and args.device != "cpu":
            jt.flags.use_cuda = 1
        params = model.parameters()
        if args.optimizer == "sgd":
            self.opt = SGD(params, args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                           nesterov=args.nesterov)
        else:
            self.opt = AdamW(params, args.lr, weight_decay=args.weight_decay)
        self.ema = ({k: v.clone().stop_grad() for k, v in model.state_dict().items()}
                    if args.ema_decay else None)

    def seed_step(self, seed: int) -> None:
        jt.set_global_seed(seed, different_seed_for_mpi=False)  # the seed already differs per rank

    def _loss(self, logits: jt.Var, y: jt.Var) -> jt.Var:
        """PyTorch's cross entropy with label smoothing, summed over the images: (1 - e) * NLL + e * mean over
        classes of -log p."""
        loss = nn.cross_entropy_loss(logits.float32(), y, reduction="sum")
        smoothing = self.args.label_smoothing
        if smoothing:
            log_p = nn.log_softmax(logits.float32(), dim=1)
            loss = (1.0 - smoothing) * loss - smoothing * log_p.mean(1).sum()
        return loss

    def forward_backward(self, x: np.ndarray, y: np.ndarray, scale: float, last: bool = True) -> float:
        """Add the gradient of this micro-batch's summed loss times ``scale``; the optimizer averages across
        ranks at the step. Returns the summed loss, unscaled."""
        with blank_batch() if scale == 0 else contextlib.nullcontext():  # an empty shard's stand-in
            loss = self._loss(self.model(jt.array(x)), jt.array(y))
        self.opt.backward(loss * scale)
        if self.synced_norms:  # run this backward's collectives now: a lazy graph could order them per rank
            jt.sync([g for p in self.model.parameters() if (g := self.opt.grad(p)) is not None])
        return float(loss.item())

    def sum_over_ranks(self, values: np.ndarray) -> np.ndarray:
        if self.world_size == 1:
            return values
        mean = jt.array(np.asarray(values, np.float64)).mpi_all_reduce("mean").numpy()
        return mean * self.world_size

    def step(self, lr: float, clip_grad: float | None) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr
        if clip_grad:
            self.opt.clip_grad_norm(clip_grad)
        self.opt.step()
        self.opt.zero_grad()

    def update_ema(self, decay: float) -> None:
        """timm's ModelEmaV2 on every entry of the state dict (Jittor keeps no integer counters)."""
        for e, m in zip(self.ema.values(), self.model.state_dict().values()):
            e.update((e * decay + m.detach() * (1.0 - decay)).stop_grad())  # stop_grad() would freeze m itself
        jt.sync(list(self.ema.values()))

    def predict(self, x: np.ndarray, ema: bool = False) -> np.ndarray:
        state = self.model.state_dict()
        raw = {k: v.numpy() for k, v in state.items()} if ema else None
        if ema:
            for k, v in self.ema.items():
                state[k].assign(v)
        self.model.eval()
        try:
            with jt.no_grad():
                return self.model(jt.array(x)).numpy().argmax(1)
        finally:
            self.model.train()
            if raw is not None:
                for k, v in raw.items():
                    state[k].assign(jt.array(v))

    def save_state(self, path: Path, meta: dict[str, Any]) -> None:
        state = {"model": {k: v.numpy() for k, v in self.model.state_dict().items()},
                 "optimizer": self.opt.state_dict(),
                 "ema": {k: v.numpy() for k, v in self.ema.items()} if self.ema is not None else None, **meta}
        write_atomically(path, lambda tmp: jt.save(state, tmp))

    def load_state(self, path: Path) -> dict[str, Any]:
        from weights_convert.formats import read_file

        try:  # through the converter's pickle reader, which builds plain values and arrays and runs no code
            state = read_file(path)[0]
            model_state = state["model"]
        except Exception as e:  # a truncated or foreign file: name it, never half-resume
            raise SystemExit(f"{path}: not a complete training checkpoint ({type(e).__name__}: {e})") from None
        params = self.model.state_dict()
        for k, v in model_state.items():
            params[k].assign(jt.array(v))
        self.opt.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema = {k: jt.array(v).stop_grad() for k, v in state["ema"].items()}
        return state

    def save_weights(self, path: Path, cfg: dict[str, Any], ema: bool) -> None:
        """The weights with the cfg they were trained with (``with_cfg``), loadable by ``create_model``."""
        weights = self.ema if ema else self.model.state_dict()
        state = with_cfg({k: v.numpy() for k, v in weights.items()}, cfg)
        write_atomically(path, lambda tmp: jt.save(state, tmp))
        print(f"jittor weights: {path}", file=sys.stderr)
