"""SIGTERM as the preemption it usually is (SLURM, Kubernetes, ``docker stop``, torchrun and mpirun tearing a job
down): the first SIGTERM asks the loop to stop at the next optimizer-step boundary, where every rank agrees to stop,
rank 0 writes the full training state, and the run exits with ``PREEMPTED_EXIT`` and a line saying how to resume.
A second SIGTERM ends the process at once, as SIGKILL would: checkpoints are written atomically, so either loses
at most what the last complete checkpoint lacks."""
from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType

PREEMPTED_EXIT = 143  # 128 + SIGTERM, what a shell reports for a process ended by SIGTERM


class Preempted(Exception):
    """The loop stopped at a step boundary on request and rank 0 saved the state; ``step`` steps are done."""

    def __init__(self, framework: str, step: int, total: int, path: str, rank: int) -> None:
        super().__init__(f"{framework}: preempted at step {step}/{total}, training state in {path}")
        self.framework, self.step, self.total, self.path, self.rank = framework, step, total, path, rank


_active = 0  # Preemption contexts open in this process


def _block_before_fork() -> None:
    if _active:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def _unblock_in_parent() -> None:
    if _active:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _default_in_child() -> None:
    # A forked child (Jittor's compiler pool) must die of SIGTERM, as its pool's terminate() expects. The Python
    # handler it inherits cannot promise that: CPython drops a signal that lands before its after-fork reset, and
    # the pool then waits forever for a worker that never saw it. SIGTERM stays blocked across the fork, so one
    # sent meanwhile is pending here and, with the default action back, ends the child at the unblock.
    if _active:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


os.register_at_fork(before=_block_before_fork, after_in_parent=_unblock_in_parent,
                    after_in_child=_default_in_child)


class Preemption:
    """``with Preemption() as p:`` SIGTERM sets ``p.requested`` (the previous handler is restored at exit)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: object = None
        self._installed = False
        self._pid = os.getpid()

    def __enter__(self) -> "Preemption":
        global _active
        if threading.current_thread() is threading.main_thread():  # Python only delivers signals there
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
            _active += 1
        return self

    def __exit__(self, kind: type | None, value: BaseException | None, tb: TracebackType | None) -> None:
        global _active
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False
            _active -= 1

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # a process forked from this one (Jittor's compiler pool) inherits the handler: there SIGTERM must end it,
        # as its pool's shutdown expects
        if self.requested or os.getpid() != self._pid:  # the second: die of it now
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        self.requested = True
        # os.write, not print: a handler that interrupts a print would raise from inside the print
        os.write(2, b"SIGTERM: stopping after this optimizer step to save the training state "
                    b"(a second SIGTERM ends the run at once)\n")
