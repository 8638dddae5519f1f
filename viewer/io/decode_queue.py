"""Background pixel decoding with priorities: the frame on screen first, then look-ahead.

A plain thread pool runs jobs first-in first-out, so after a fast scroll the frame the user stopped
on waits behind every prefetch queued on the way. Here each job has a priority (0 = on screen, then
the distance ahead in the scroll direction) and an owner; an owner that moves on drops its jobs that
have not started. Qt-free: the viewport hears of a finished job through the future's done callback.

The queue never keeps an owner alive (it holds a weak reference) and a worker lets go of a job's function
as soon as it has run: an owner is a viewport widget, and a last reference dropped on a worker thread would
run a QWidget's destructor off the GUI thread (full test runs crashed with SIGSEGV at widget teardown).
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["DecodeQueue", "shared_queue"]


class DecodeQueue:
    """A fixed set of daemon worker threads taking the lowest-priority-number job first."""

    def __init__(self, workers: int | None = None, name: str = "pixel-decode") -> None:
        self.workers = max(1, workers if workers is not None else min(4, os.cpu_count() or 1))
        self._heap: list[tuple[float, int, Future, Callable[[], Any], object]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(self.workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[[], Any], priority: float = 0.0, owner: object = None) -> Future:
        """Queue `fn()`; lower `priority` runs sooner, equal priorities in submission order."""
        fut: Future = Future()
        with self._cond:
            heapq.heappush(self._heap, (priority, next(self._seq), fut, fn, _owner_key(owner)))
            self._cond.notify()
        return fut

    def drop(self, owner: object, keep: Callable[[Future], bool] | None = None) -> int:
        """Cancel the not-yet-started jobs of `owner` (except those `keep` accepts); returns how many."""
        with self._cond:
            kept, dropped = [], 0
            for item in self._heap:
                if _is_owner(item[4], owner) and (keep is None or not keep(item[2])):
                    item[2].cancel()
                    dropped += 1
                else:
                    kept.append(item)
            heapq.heapify(kept)
            self._heap = kept
        return dropped

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                item = heapq.heappop(self._heap)
            fut, fn = item[2], item[3]
            del item
            if fut.set_running_or_notify_cancel():
                try:
                    result = fn()
                except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                    fut.set_exception(exc)
                else:
                    fut.set_result(result)
                result = None
            del fut, fn  # before waiting for the next job: see the module docstring


def _owner_key(owner: object) -> object:
    """A weak reference to `owner` where it allows one (widgets do), else the object itself."""
    if owner is None:
        return None
    try:
        return weakref.ref(owner)
    except TypeError:
        return owner


def _is_owner(key: object, owner: object) -> bool:
    if isinstance(key, weakref.ref):
        return key() is owner
    return key is owner


_shared: DecodeQueue | None = None
_shared_lock = threading.Lock()


def shared_queue() -> DecodeQueue:
    """The process-wide decode queue all viewports share (workers = CPU cores, at most 4)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = DecodeQueue()
        return _shared
