"""Run a function off the GUI thread and get its result back on the GUI thread.

Results are collected by a QTimer on the GUI thread (no cross-thread signal to an object that may
already be gone), so a widget closed while work is running cannot crash the app.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from PySide6.QtCore import QObject, QTimer

_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="viewer-bg")


class BackgroundRunner(QObject):
    """Submits jobs to a shared thread pool and calls `on_done(result)` / `on_error(exc)` on the GUI
    thread. Jobs of a runner whose owner was destroyed are dropped silently."""

    def __init__(self, parent: QObject | None = None, poll_ms: int = 30) -> None:
        super().__init__(parent)
        self._jobs: list[tuple[Future, Callable[[Any], None], Callable[[BaseException], None] | None]] = []
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._poll)

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Future:
        fut = _POOL.submit(fn, *args)
        self._jobs.append((fut, on_done, on_error))
        if not self._timer.isActive():
            self._timer.start()
        return fut

    def busy(self) -> bool:
        return bool(self._jobs)

    def cancel_all(self) -> None:
        for fut, _, _ in self._jobs:
            fut.cancel()
        self._jobs = [j for j in self._jobs if not j[0].cancelled()]

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Cancel what has not started and wait for what has (an owner closing); whether all of it ended."""
        self.cancel_all()
        _finished, not_done = wait([j[0] for j in self._jobs], timeout)
        return not not_done

    def _poll(self) -> None:
        still: list = []
        done: list = []
        for job in self._jobs:
            (done if job[0].done() else still).append(job)
        self._jobs = still
        if not still:
            self._timer.stop()
        for fut, on_done, on_error in done:
            if fut.cancelled():
                continue
            exc = fut.exception()
            if exc is None:
                on_done(fut.result())
            elif on_error is not None:
                on_error(exc)
