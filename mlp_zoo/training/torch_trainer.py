"""PyTorch's side of the loop: torch.optim, DistributedDataParallel when started by torchrun (gloo on CPU,
NCCL on CUDA), torch.autocast for --amp, an EMA of the state dict, checkpoints with torch.save."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from mlp_zoo.model_specs.pretrained_cfg import with_cfg
from mlp_zoo.training.checkpoint import write_atomically
from mlp_zoo.training.torch_sync_batchnorm import synchronise_batchnorm
from mlp_zoo.training.stand_in import blank_batch


def launched_by_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


class TorchTrainer:
    """One model trained on numpy batches; with several processes each holds a replica and this rank's shard."""

    framework = "torch"

    def __init__(self, model: torch.nn.Module, args: Any) -> None:
        self.args = args
        self.world_size = int(os.environ.get("WORLD_SIZE", "1")) if launched_by_torchrun() else 1
        self.rank = int(os.environ.get("RANK", "0")) if launched_by_torchrun() else 0
        cuda = torch.cuda.is_available() and args.device != "cpu"
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        self.model = model.to(self.device)
        self.net: torch.nn.Module = self.model
        if self.world_size > 1:
            if not dist.is_initialized():
                dist.init_process_group("nccl" if cuda else "gloo")
            # BatchNorm statistics of the global batch (PyTorch's SyncBatchNorm refuses CPU tensors; ours runs on
            # any device and backend)
            synchronise_batchnorm(self.model)
            # broadcasts rank 0's parameters and buffers now, and rank 0's buffers before every forward
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[local_rank] if cuda else None)
        params = list(self.model.parameters())
        if args.optimizer == "sgd":
            self.opt = torch.optim.SGD(params, args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                                       nesterov=args.nesterov)
        else:
            self.opt = torch.optim.AdamW(params, args.lr, weight_decay=args.weight_decay)
        # --amp: bfloat16 on the CPU (no loss scaling needed), float16 with a GradScaler on CUDA
        self.amp_dtype = (torch.float16 if cuda else torch.bfloat16) if args.amp else None
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.ema = ({k: v.detach().clone() for k, v in self.model.state_dict().items()}
                    if args.ema_decay else None)

    def seed_step(self, seed: int) -> None:
        torch.manual_seed(seed)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Summed over the images: the loop divides by the images the whole step kept."""
        return F.cross_entropy(logits.float(), y, label_smoothing=self.args.label_smoothing, reduction="sum")

    def forward_backward(self, x: np.ndarray, y: np.ndarray, scale: float, last: bool = True) -> float:
        """Add the gradient of this micro-batch's summed loss times ``scale``; DDP averages across ranks on the
        last micro-batch only. Returns the summed loss, unscaled."""
        x, y = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
        sync = contextlib.nullcontext() if last or self.net is self.model else self.net.no_sync()
        amp = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype
               else contextlib.nullcontext())
        blank = blank_batch() if scale == 0 else contextlib.nullcontext()  # an empty shard's stand-in
        with sync, blank:
            with amp:
                loss = self._loss(self.net(x), y)
            scaled = loss * scale
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
        return float(loss.item())

    def sum_over_ranks(self, values: np.ndarray) -> np.ndarray:
        if self.world_size == 1:
            return values
        t = torch.from_numpy(np.asarray(values, np.float64)).to(self.device)
        dist.all_reduce(t)
        return t.cpu().numpy()

    def step(self, lr: float, clip_grad: float | None) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr
        if self.scaler:
            self.scaler.unscale_(self.opt)
        if clip_grad:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip_grad)
        if self.scaler:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """timm's ModelEmaV2 on every floating entry of the state dict; integer counters are copied."""
        for e, m in zip(self.ema.values(), self.model.state_dict().values()):
            if e.is_floating_point():
                e.mul_(decay).add_(m.detach(), alpha=1.0 - decay)
            else:
                e.copy_(m)

    @torch.no_grad()
    def predict(self, x: np.ndarray, ema: bool = False) -> np.ndarray:
        raw = {k: v.clone() for k, v in self.model.state_dict().items()} if ema else None
        if ema:
            self.model.load_state_dict(self.ema)
        self.model.eval()
        try:
            return self.model(torch.from_numpy(x).to(self.device)).argmax(1).cpu().numpy()
        finally:
            self.model.train()
            if raw is not None:
                self.model.load_state_dict(raw)

    def save_state(self, path: Path, meta: dict[str, Any]) -> None:
        state = {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "ema": self.ema,
                 "scaler": self.scaler.state_dict() if self.scaler else None, **meta}
        write_atomically(path, lambda tmp: torch.save(state, tmp))

    def load_state(self, path: Path) -> dict[str, Any]:
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as e:  # a truncated or foreign file: name it, never half-resume
            raise SystemExit(f"{path}: not a complete training checkpoint ({type(e).__name__}: {e})") from None
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema = state["ema"]
        if self.scaler:
            self.scaler.load_state_dict(state["scaler"])
        return state

    def save_weights(self, path: Path, cfg: dict[str, Any], ema: bool) -> None:
        """The weights with the cfg they were trained with (``with_cfg``), loadable by ``create_model``."""
        weights = self.ema if ema else self.model.state_dict()
        state = with_cfg({k: v.cpu() for k, v in weights.items()}, cfg)
        write_atomically(path, lambda tmp: torch.save(state, tmp))
        print(f"torch weights: {path}", file=sys.stderr)
