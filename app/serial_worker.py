"""One background thread that runs submitted calls in order (autosave, worklist queries).

A daemon thread, so a call stuck on a database lock can never keep the application from exiting; work
that must finish before exit (the report's last save) is done synchronously by its owner at close.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


class SerialWorker:
    def __init__(self, name: str) -> None:
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.put((fn, args))

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, args = item
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - the callers report their own errors; the thread must live on
                continue

    def shutdown(self, wait: bool = True, timeout: float | None = 30.0) -> None:
        self._queue.put(None)
        if wait and self._thread is not threading.current_thread():
            self._thread.join(timeout)
