"""Saving the report off the GUI thread: the editor hands a snapshot over and gets the result back as a signal.

A database write can wait on a lock for seconds (an import committing, another workstation on the same
PostgreSQL); on the GUI thread that would freeze typing. Autosaves therefore run in the background (the GUI's
BackgroundRunner), one at a time and in order. `save_sync` runs the same code on the caller's thread for the moments that need the
result at once (before signing, switching study, closing) and first waits for a save in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from viewer.widgets.background import BackgroundRunner


@dataclass(frozen=True)
class SaveJob:
    seq: int
    payload: Any  # what the editor's persist function needs (a snapshot, never live widgets)


@dataclass(frozen=True)
class SaveResult:
    seq: int
    payload: Any
    value: Any = None  # what persist returned
    error: BaseException | None = None


class BackgroundSaver(QObject):
    """Runs `persist(payload)` off the GUI thread; `finished(SaveResult)` comes back on the GUI thread (never
    once this object is gone)."""

    finished = Signal(object)

    def __init__(self, persist: Callable[[Any], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._persist = persist
        self._runner = BackgroundRunner(self)
        self._lock = threading.Lock()  # one save at a time, whether background or synchronous
        self._seq = 0
        self._in_flight = 0

    @property
    def busy(self) -> bool:
        return self._in_flight > 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def save_async(self, payload: Any) -> int:
        job = SaveJob(self.next_seq(), payload)
        self._in_flight += 1
        execute = self._execute
        self._runner.start(lambda _job: execute(job), on_done=self.finished.emit, serial=True)
        return job.seq

    def save_sync(self, payload: Any) -> SaveResult:
        """Save now on this thread (after any save in flight has finished)."""
        return self._execute(SaveJob(self.next_seq(), payload))

    def _execute(self, job: SaveJob) -> SaveResult:
        with self._lock:
            try:
                value = self._persist(job.payload)
            except Exception as exc:  # noqa: BLE001 - handed to the editor, which tells the user and retries
                return SaveResult(job.seq, job.payload, error=exc)
            return SaveResult(job.seq, job.payload, value)

    def job_done(self) -> None:
        """The editor calls this when it handled a background result."""
        self._in_flight = max(0, self._in_flight - 1)

    def shutdown(self) -> None:
        """Wait for the saves in flight (their results arrive with the event loop, if anyone still listens)."""
        self._runner.wait(30.0)
