"""BatchNorm statistics over every rank of a Jittor MPI run (what Jittor's ``nn.BatchNorm(sync=True)`` does, made
exact): the counts, sums and centred sums of the rank's batch are all-reduced (``mpi_all_reduce("add")``, which
back-propagates), so N ranks with B/N images each normalise, back-propagate and update the running statistics
(unbiased variance, as PyTorch) exactly as one process with B; Jittor's own averages each rank's E[x] and E[x^2],
exact only for equal shards and less accurate. Mirrors ``torch_sync_batchnorm``.

A rank stepping with a blank image of weight 0 (an empty shard, ``training.loop``) contributes nothing to the
statistics (``stand_in``)."""
from __future__ import annotations

import numpy as np

from mlp_zoo.jittor_support.runtime import jt
from jittor import nn
from models_jittor.layers import BatchNorm2d
from mlp_zoo.training.stand_in import batch_weight


class SyncBatchNorm2d(BatchNorm2d):
    """The zoo's ``BatchNorm2d`` whose training-mode statistics are the global batch's; eval mode is unchanged."""

    def execute(self, x: jt.Var) -> jt.Var:
        if not self.is_training():
            return super().execute(x)
        dims = [0] + list(range(2, x.ndim))
        weight = batch_weight()
        count = np.array([x.numel() // x.shape[1] * weight])
        n = float(jt.array(count).mpi_all_reduce("add").item())  # fetched now: collectives in one order
        mean = ((x.float64().sum(dims) * weight).mpi_all_reduce("add") / max(n, 1.0)).float32()
        centred = x - mean.broadcast(x, dims)
        var = (((centred * centred).float64().sum(dims) * weight).mpi_all_reduce("add") / max(n, 1.0))  # biased
        invstd = (1.0 / jt.sqrt(var + self.eps)).float32()
        out = centred * (invstd * self.weight).broadcast(x, dims) + self.bias.broadcast(x, dims)
        if n > 0:
            self._batches += 1
            m = 1.0 / self._batches if self.momentum is None else self.momentum
            unbiased = (var * (n / max(n - 1, 1.0))).float32()
            # detach(), not stop_grad(): Jittor's stop_grad() freezes the var itself, and the gradient through
            # the batch mean (``centred``) would be lost
            self.running_mean.update((1 - m) * self.running_mean + m * mean.detach())
            self.running_var.update((1 - m) * self.running_var + m * unbiased.detach())
            # run this layer's collectives now, in layer order on every rank: left lazy, the updates would run
            # them at some later sync, where they could meet another rank's gradient all-reduce
            jt.sync([self.running_mean, self.running_var])
        return out


def synchronise_batchnorm(model: nn.Module) -> int:
    """Make every zoo ``BatchNorm2d`` of ``model`` a ``SyncBatchNorm2d``, in place (parameters and buffers kept).
    Returns how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, BatchNorm2d) and not isinstance(module, SyncBatchNorm2d):
            module.__class__ = (SyncBatchNorm2d if type(module) is BatchNorm2d
                                else type(f"Sync{type(module).__name__}", (type(module), SyncBatchNorm2d), {}))
            count += 1
    return count
