"""The training loop both frameworks run: per optimizer step the learning rate of the schedule, the step's
micro-batches (this rank's shard of each), one optimizer update, the EMA; test accuracy at each epoch's end;
the full state saved every epoch and every ``save_every`` steps; resumed from the last saved state.

A trainer (``torch_trainer.TorchTrainer``, ``jittor_trainer.JittorTrainer``) provides: ``framework``, ``rank``,
``world_size``, ``seed_step``, ``forward_backward``, ``sum_over_ranks``, ``step``, ``update_ema``, ``predict``,
``save_state``, ``load_state``, ``save_weights``."""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol

import numpy as np

from mlp_zoo.training.checkpoint import state_path, weights_path
from mlp_zoo.training.preemption import Preempted, Preemption
from mlp_zoo.training.plan import Layout, epoch_order, step_indices, steps_per_epoch, total_steps
from mlp_zoo.training.schedule import learning_rate


class Data(Protocol):
    """What the loop reads (``training.data.StreamedData``)."""

    train: np.ndarray
    test: np.ndarray
    bad: set[str]
    cfg: dict[str, Any]  # the pretrained_cfg the saved weights carry

    def train_batches(self, steps: Iterable[tuple[Any, int, list[np.ndarray]]]
                      ) -> Iterator[tuple[Any, list[tuple[np.ndarray, np.ndarray]]]]: ...

    def test_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, int]]: ...


@dataclass
class Run:
    """One framework's training: the loss of every optimizer step, test accuracy (%) after every epoch (of the
    raw and, with EMA, the averaged weights), wall time of this process's part, the final weights."""

    framework: str
    losses: list[float] = field(default_factory=list)
    accuracies: list[float | None] = field(default_factory=list)  # None: no test image could be read
    ema_accuracies: list[float | None] = field(default_factory=list)
    seconds: float = 0.0
    checkpoint: str = ""
    ema_checkpoint: str = ""
    skipped_images: list[str] = field(default_factory=list)  # bad images named and left out, by this rank
    empty_shards: int = 0  # micro-batch shards of this rank with no image left: a zero gradient
    test_predictions: list[int] = field(default_factory=list)  # the final model's class per test image (raw)


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of the random draws (stochastic depth) of one step on one rank: a resumed run draws what the
    uninterrupted one drew without carrying generator states, and ranks draw independently."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0] & 0x7FFFFFFF)


def evaluate(trainer: Any, data: Data, batch_size: int, ema: bool) -> tuple[float | None, list[int]]:
    """Test accuracy in % and the predicted classes, over the test images that decode; None when none does
    (an empty or all-bad test split has no accuracy, rather than 0%)."""
    predictions, correct = [], 0
    for x, y, n in data.test_batches(batch_size):
        p = trainer.predict(x, ema)[:n]
        correct += int((p == y[:n]).sum())
        predictions += [int(c) for c in p]
    return (100.0 * correct / len(predictions) if predictions else None), predictions


def accuracy_line(framework: str, epoch: int, accuracy: float | None, ema: float | None, images: int,
                  split: int) -> str:
    """``<framework> epoch N: test accuracy A% (n images)``, naming the bad images left out of the count."""
    if accuracy is None:
        return (f"{framework} epoch {epoch}: no test accuracy (" + (f"none of the {split} test images could be "
                f"read)" if split else "the test split is empty)"))
    return (f"{framework} epoch {epoch}: test accuracy {accuracy:.2f}%" + (f", EMA {ema:.2f}%" if ema is not None
            else "") + f" ({images} images" + (f", {split - images} bad left out)" if split > images else ")"))


def planned_steps(first: int, total: int, per_epoch: int, train: np.ndarray, seed: int, layout: Layout,
                  rank: int) -> Iterator[tuple[int, int, list[np.ndarray]]]:
    """``(step, epoch, this rank's shard of each micro-batch)`` for steps ``first`` .. ``total - 1``."""
    order, order_epoch = None, None
    for step in range(first, total):
        epoch, in_epoch = divmod(step, per_epoch)
        if epoch != order_epoch:
            order, order_epoch = epoch_order(len(train), seed, epoch), epoch
        yield step, epoch, layout.shards(train[step_indices(order, in_epoch, layout)], rank)


def train(trainer: Any, data: Data, args: Any, out: Path, preemption: Preemption | None = None) -> Run:
    """Train to ``total`` steps (or from the saved state with ``args.resume``). Each step's gradient is the mean
    over the images kept (decoded) in its global batch: every micro-batch's summed loss is scaled by
    world_size / kept (DDP and the Jittor optimizer average the ranks), so a shard that lost images to bad files
    weighs what it kept, and an empty shard still takes part in every collective with one blank image of weight
    0 (a zero gradient, counted in ``Run.empty_shards``). A global batch with no image at all skips its update.
    With ``preemption`` requested (SIGTERM) on any rank, every rank stops at the next step boundary, rank 0 saves
    the state, and ``Preempted`` is raised."""
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
        data.bad.update(run.skipped_images)  # named in the first part of the run, still counted
        if rank == 0:
            print(f"{trainer.framework}: resumed from {path} at step {len(run.losses)}/{total}", file=sys.stderr)
    first = len(run.losses)
    start, seconds_before = time.perf_counter(), run.seconds

    def save(step: int, lr: float) -> None:
        run.skipped_images = sorted(data.bad)
        run.seconds = seconds_before + time.perf_counter() - start
        trainer.save_state(path, {"run": asdict(run), "step": step, "epoch": step // per_epoch,
                                  "step_in_epoch": step % per_epoch, "lr": lr, "args": vars(args)})

    steps = planned_steps(first, total, per_epoch, data.train, args.seed, layout, rank)
    with contextlib.closing(data.train_batches(((s, e), e, shards) for s, e, shards in steps)) as batches_of_steps:
        for (step, epoch), batches in batches_of_steps:
            lr = learning_rate(step, args.lr, total, args.warmup_steps, args.min_lr, args.warmup_lr)
            stop = preemption is not None and preemption.requested
            kept, stops = trainer.sum_over_ranks(np.array([sum(len(y) for _, y in batches), stop], np.float64))
            if stops:
                if rank == 0:
                    save(step, lr)
                trainer.sum_over_ranks(np.zeros(1))  # no rank exits (and has its launcher kill rank 0) mid-save
                raise Preempted(trainer.framework, step, total, str(path), rank)
            trainer.seed_step(step_seed(args.seed, step, rank))
            if kept == 0:
                loss = float("nan")
                if rank == 0:
                    print(f"{trainer.framework} step {step + 1}: every image of the global batch is bad, no update",
                          file=sys.stderr, flush=True)
            else:
                local = 0.0
                for i, (x, y) in enumerate(batches):
                    last = i == len(batches) - 1
                    if len(y):
                        local += trainer.forward_backward(x, y, trainer.world_size / kept, last=last)
                    else:  # nothing left of this shard: a blank image of weight 0 keeps the collectives in step
                        run.empty_shards += 1
                        trainer.forward_backward(np.zeros((1, *x.shape[1:]), np.float32), np.zeros(1, np.int64),
                                                 0.0, last=last)
                loss = float(trainer.sum_over_ranks(np.array([local]))[0] / kept)
                trainer.step(lr, args.clip_grad)
                if args.ema_decay:
                    trainer.update_ema(args.ema_decay)
            run.losses.append(loss)
            step += 1
            if rank == 0 and (step % args.log_every == 0 or step == total):
                rate = layout.samples_per_step * (step - first) / (time.perf_counter() - start)
                print(f"{trainer.framework} epoch {epoch + 1} step {step}/{total} loss {loss:.4f} lr {lr:.3g} "
                      f"{rate:.1f} img/s", file=sys.stderr, flush=True)
            epoch_done = step % per_epoch == 0 or step == total
            if epoch_done and rank == 0:
                acc, run.test_predictions = evaluate(trainer, data, args.batch_size, ema=False)
                run.accuracies.append(acc)
                if args.ema_decay:
                    run.ema_accuracies.append(evaluate(trainer, data, args.batch_size, ema=True)[0])
                print(accuracy_line(trainer.framework, epoch + 1, acc, run.ema_accuracies[-1] if args.ema_decay
                                    else None, len(run.test_predictions), len(data.test)), file=sys.stderr, flush=True)
            if rank == 0 and (epoch_done or (args.save_every and step % args.save_every == 0)):
                save(step, lr)
    run.seconds, run.skipped_images = seconds_before + time.perf_counter() - start, sorted(data.bad)
    if data.bad or run.empty_shards:
        print(f"{trainer.framework} rank {rank}: skipped {len(data.bad)} bad image(s); {run.empty_shards} "
              f"micro-batch shard(s) had none left", file=sys.stderr)
    if rank == 0:
        run.checkpoint = str(weights_path(out, args.model, trainer.framework))
        trainer.save_weights(Path(run.checkpoint), data.cfg, ema=False)
        if args.ema_decay:
            run.ema_checkpoint = str(weights_path(out, args.model, trainer.framework, ema=True))
            trainer.save_weights(Path(run.ema_checkpoint), data.cfg, ema=True)
    return run
