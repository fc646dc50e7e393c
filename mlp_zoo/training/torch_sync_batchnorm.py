"""BatchNorm statistics over every rank of a PyTorch data-parallel run, on the CPU as on CUDA: the batch's
statistics are those of the global batch (counts, sums and centred sums all-reduced, two passes), so N ranks with
B/N images each normalise, back-propagate and update the running statistics exactly as one process with B. PyTorch's
``SyncBatchNorm`` refuses CPU tensors; this one uses ``torch.distributed.nn.functional.all_reduce``, which
back-propagates (the gradient of a sum over ranks is the sum over ranks of the gradients), on any backend.

A rank stepping with a blank image of weight 0 (an empty shard, ``training.loop``) contributes nothing to the
statistics (``stand_in``)."""
from __future__ import annotations

import torch
from torch import nn
from torch.distributed.nn.functional import all_reduce
from mlp_zoo.training.stand_in import batch_weight


class SyncBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode statistics are the global batch's; eval mode is unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        dims, shape = [0, 2, 3], (1, -1, 1, 1)
        weight = batch_weight()
        local = torch.cat([x.sum(dims, dtype=torch.float64) * weight,
                           x.new_full((1,), x.numel() // x.shape[1] * weight, dtype=torch.float64)])
        total = all_reduce(local)
        n = total[-1].clamp(min=1)  # 0 when every rank's micro-batch is a blank: nothing to normalise by
        mean = (total[:-1] / n).to(x.dtype)
        centred = x - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims, dtype=torch.float64) * weight) / n  # biased
        out = centred * torch.rsqrt(var.to(x.dtype) + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and float(total[-1].detach()) > 0:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_((var * n / (n - 1).clamp(min=1)).to(x.dtype).detach(), alpha=m)
        return out


def synchronise_batchnorm(model: nn.Module) -> int:
    """Make every ``nn.BatchNorm2d`` of ``model`` (subclasses included: their own ``forward`` still runs first,
    e.g. sMLPNet's channels-last one, and reaches this one's through ``super()``) a ``SyncBatchNorm2d``, in place,
    keeping its parameters and buffers. Returns how many."""
    count = 0
    for module in model.modules():
        kind = type(module)
        if isinstance(module, nn.BatchNorm2d) and not isinstance(module, SyncBatchNorm2d):
            module.__class__ = (SyncBatchNorm2d if kind is nn.BatchNorm2d
                                else type(f"Sync{kind.__name__}", (kind, SyncBatchNorm2d), {}))
            count += 1
    return count
