"""A thread-safe cancel flag shared between the GUI (which sets it) and a worker (which polls it)."""

from __future__ import annotations

import threading


class CancelToken:
    def __init__(self, event: threading.Event | None = None) -> None:
        self._event = event or threading.Event()  # a background job's cancel event, when given

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()
