"""Ordered streaming of ``load_fn(item)`` over many items, in worker processes, with bounded memory.

    for index, result in stream(paths, load_fn, workers=2):
        ...  # results arrive in the order of ``items``, whichever worker finished first

Generic: ``load_fn`` may be any picklable callable (a module-level function or a ``functools.partial`` of one),
``items`` any picklable values, read lazily from an iterable. At most ``queue_size`` items are in flight (sent to
workers, or finished and waiting for an earlier one), so memory is bounded by ``queue_size`` results, whatever the
number of items. Workers are started with ``spawn`` (a fresh interpreter: nothing of a parent's torch or Jittor
threads is forked) and import only what ``load_fn`` needs; ``workers=0`` runs ``load_fn`` inline in the caller.
An exception raised by ``load_fn`` ends the stream with that exception in the caller (return a value such as
``BadImage`` for an item that should be skipped instead); a worker that dies ends it with a ``RuntimeError``.
Leaving the loop early (break, an exception) stops the workers.

A worker never outlives the process that started it: on Linux the kernel kills it when its parent dies
(``PR_SET_PDEATHSIG``), and everywhere it checks, while it waits for work, that its parent is still its parent
(a dead parent's children are re-parented), so SIGKILL of the parent, the OOM killer or ``docker stop`` leave
nothing running behind. Workers ignore SIGTERM and SIGINT, which a process group receives with its parent: the
parent decides (a fine-tune finishes its step and saves, then stops them).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
import traceback
from typing import Any, Callable, Iterable, Iterator

POLL_SECONDS = 1.0


class WorkerError(RuntimeError):
    """``load_fn`` raised an exception that could not be sent back as itself; the message holds its traceback."""


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; elsewhere the polling below serves)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _work(load_fn: Callable[[Any], Any], tasks: mp.Queue, results: mp.Queue, parent: int) -> None:
    _die_with_parent()
    # SIGTERM / Ctrl-C sent to the whole process group (SLURM, a terminal) are the parent's to handle: it may be
    # finishing a step and saving, and stops its workers itself
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        if os.getppid() != parent:  # the parent died (before prctl took effect, or where there is none)
            os._exit(1)  # not sys.exit: the queues' feeder threads would wait on a pipe nobody reads
        try:
            task = tasks.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
        if task is None:
            return
        index, item = task
        try:
            results.put((index, True, load_fn(item)))
        except BaseException as e:  # noqa: BLE001 - sent to the caller, which raises it
            try:
                results.put((index, False, e))
            except Exception:  # an exception that does not pickle: its text instead
                results.put((index, False, WorkerError(traceback.format_exc())))


def stream(items: Iterable[Any], load_fn: Callable[[Any], Any], workers: int = 2,
           queue_size: int | None = None) -> Iterator[tuple[int, Any]]:
    """(index, ``load_fn(item)``) for every item, in order; ``workers`` processes (0: inline), at most
    ``queue_size`` items in flight (default ``4 * workers``)."""
    if workers < 0:
        raise ValueError(f"workers={workers}: must be 0 or more")
    if workers == 0:
        for index, item in enumerate(items):
            yield index, load_fn(item)
        return
    window = max(queue_size or 4 * workers, workers)
    context = mp.get_context("spawn")
    tasks, results = context.Queue(), context.Queue()
    procs = [context.Process(target=_work, args=(load_fn, tasks, results, os.getpid()),
                             daemon=True) for _ in range(workers)]
    for p in procs:
        p.start()
    source = enumerate(items)
    sent = done = 0
    waiting: dict[int, tuple[bool, Any]] = {}
    try:
        for index, item in itertools.islice(source, window):
            tasks.put((index, item))
            sent += 1
        while done < sent:
            while done in waiting:
                ok, value = waiting.pop(done)
                if not ok:
                    raise value
                yield done, value
                done += 1
                for index, item in itertools.islice(source, 1):  # one out, one in
                    tasks.put((index, item))
                    sent += 1
            if done == sent:
                break
            try:
                index, ok, value = results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                dead = [p for p in procs if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"an image worker process died (exit code {dead[0].exitcode}); "
                                       f"{done} of {sent}+ items done") from None
                continue
            waiting[index] = (ok, value)
    finally:
        _stop(procs, tasks, results)


def _stop(procs: list, tasks: mp.Queue, results: mp.Queue, grace: float = 10.0) -> None:
    """Ask the workers to finish, reading what they still send (a worker cannot exit before its results are
    read), and kill any still running after ``grace`` seconds (SIGKILL: they ignore SIGTERM)."""
    for _ in procs:
        tasks.put(None)
    deadline = time.monotonic() + grace
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        try:
            results.get(timeout=0.05)
        except queue.Empty:
            pass
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join()
