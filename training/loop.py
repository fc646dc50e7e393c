"""The training loop both frameworks run: per optimizer step the learning rate of the schedule, the step's
micro-batches (this rank's shard of each), one optimizer update, the EMA; test accuracy at each epoch's end;
the full state saved every epoch and every ``save_every`` steps; resumed from the last saved state.

A trainer (``torch_trainer.TorchTrainer``, ``jittor_trainer.JittorTrainer``) provides: ``framework``, ``rank``,
``world_size``, ``seed_step``, ``forward_backward``, ``mean_over_ranks``, ``step``, ``update_ema``, ``predict``,
``save_state``, ``load_state``, ``save_weights``."""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from training.checkpoint import state_path, weights_path
from training.plan import Layout, epoch_order, step_indices, steps_per_epoch, total_steps
from training.schedule import learning_rate


class Data(Protocol):
    train: np.ndarray
    test: np.ndarray
    labels: np.ndarray

    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class Run:
    """One framework's training: the loss of every optimizer step, test accuracy (%) after every epoch (of the
    raw and, with EMA, the averaged weights), wall time of this process's part, the final weights."""

    framework: str
    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    ema_accuracies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    checkpoint: str = ""
    ema_checkpoint: str = ""


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of the random draws (stochastic depth) of one step on one rank: a resumed run draws what the
    uninterrupted one drew without carrying generator states, and ranks draw independently."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0] & 0x7FFFFFFF)


def accuracy(trainer: Any, data: Data, batch_size: int, ema: bool) -> float:
    """Test accuracy in %, in full batches (the last one padded, so Jittor compiles no second shape)."""
    test = data.test
    padded = np.concatenate([test, test[:(-len(test)) % batch_size]])
    predictions = np.concatenate([trainer.predict(data.batch(padded[i:i + batch_size])[0], ema)
                                  for i in range(0, len(padded), batch_size)])[:len(test)]
    return float(100.0 * (predictions == data.labels[test]).mean())


def train(trainer: Any, data: Data, args: Any, out: Path) -> Run:
    layout = Layout(args.batch_size, args.accum_steps, trainer.world_size)
    n, rank = len(data.train), trainer.rank
    per_epoch, total = steps_per_epoch(n, layout), total_steps(n, layout, args.epochs, args.steps)
    if per_epoch == 0:
        raise ValueError(f"{n} training images make no step of {layout.samples_per_step} "
                         f"(--batch-size x --accum-steps)")
    run, path = Run(trainer.framework), state_path(out, trainer.framework)
    if args.resume and path.exists():
        meta = trainer.load_state(path)
        run = Run(**{**meta["run"], "framework": trainer.framework})
        if rank == 0:
            print(f"{trainer.framework}: resumed from {path} at step {len(run.losses)}/{total}", file=sys.stderr)
    step, start, orders = len(run.losses), time.perf_counter(), {}
    first_step, seconds_before = step, run.seconds
    while step < total:
        epoch, in_epoch = divmod(step, per_epoch)
        order = orders.setdefault(epoch, epoch_order(n, args.seed, epoch))
        indices = data.train[step_indices(order, in_epoch, layout)]
        lr = learning_rate(step, args.lr, total, args.warmup_steps, args.min_lr)
        trainer.seed_step(step_seed(args.seed, step, rank))
        shards, loss = layout.shards(indices, rank), 0.0
        for i, shard in enumerate(shards):
            x, y = data.batch(shard)
            loss += trainer.forward_backward(x, y, 1.0 / len(shards), last=i == len(shards) - 1)
        loss = trainer.mean_over_ranks(loss)
        trainer.step(lr, args.clip_grad)
        if args.ema_decay:
            trainer.update_ema(args.ema_decay)
        run.losses.append(loss)
        step += 1
        if rank == 0 and (step % args.log_every == 0 or step == total):
            rate = layout.samples_per_step * (step - first_step) / (time.perf_counter() - start)
            print(f"{trainer.framework} epoch {epoch + 1} step {step}/{total} loss {loss:.4f} lr {lr:.3g} "
                  f"{rate:.1f} img/s", file=sys.stderr, flush=True)
        epoch_done = step % per_epoch == 0 or step == total
        if epoch_done and rank == 0:
            run.accuracies.append(accuracy(trainer, data, args.batch_size, ema=False))
            if args.ema_decay:
                run.ema_accuracies.append(accuracy(trainer, data, args.batch_size, ema=True))
            print(f"{trainer.framework} epoch {epoch + 1}: test accuracy {run.accuracies[-1]:.2f}%"
                  + (f", EMA {run.ema_accuracies[-1]:.2f}%" if args.ema_decay else "")
                  + f" ({len(data.test)} images)", file=sys.stderr, flush=True)
        if rank == 0 and (epoch_done or (args.save_every and step % args.save_every == 0)):
            run.seconds = seconds_before + time.perf_counter() - start
            trainer.save_state(path, {"run": asdict(run), "step": step, "epoch": step // per_epoch,
                                      "step_in_epoch": step % per_epoch, "lr": lr, "args": vars(args)})
    run.seconds = seconds_before + time.perf_counter() - start
    if rank == 0:
        run.checkpoint = str(weights_path(out, args.model, trainer.framework))
        trainer.save_weights(Path(run.checkpoint), ema=False)
        if args.ema_decay:
            run.ema_checkpoint = str(weights_path(out, args.model, trainer.framework, ema=True))
            trainer.save_weights(Path(run.ema_checkpoint), ema=True)
    return run
