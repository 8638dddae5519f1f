"""Run a long study action (export, send) on a worker thread with a progress dialog and Cancel."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal
from PySide6.QtWidgets import QProgressDialog, QWidget


class _Worker(QThread):
    progressed = Signal(int, int)
    done = Signal(object)
    failed = Signal(str)

    def __init__(self, work: Callable[..., Any]) -> None:
        super().__init__()
        self.work = work
        self.cancel_event = threading.Event()

    def run(self) -> None:
        try:
            result = self.work(lambda n, total: self.progressed.emit(n, total), self.cancel_event.is_set)
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the user in words
            self.failed.emit(str(exc) or type(exc).__name__)
            return
        self.done.emit(result)


class BackgroundJob(QObject):
    """`work(progress(n, total), cancelled() -> bool)` runs off the GUI thread; `finished(result)` or
    `failed(message)` arrive on the GUI thread. The progress dialog's Cancel sets `cancelled`."""

    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, title: str, work: Callable[..., Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.dialog = QProgressDialog(title, "Cancel", 0, 0, parent)
        self.dialog.setWindowTitle(title)
        self.dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.dialog.setMinimumDuration(300)
        self.worker = _Worker(work)
        self.worker.progressed.connect(self._progress)
        self.worker.done.connect(self._done)
        self.worker.failed.connect(self._failed)
        self.dialog.canceled.connect(self.worker.cancel_event.set)

    def start(self) -> BackgroundJob:
        self.worker.start()
        return self

    def _progress(self, n: int, total: int) -> None:
        self.dialog.setMaximum(total)
        self.dialog.setValue(n)

    def _done(self, result: Any) -> None:
        self.worker.wait()
        self.dialog.reset()
        self.finished.emit(result)

    def _failed(self, message: str) -> None:
        self.worker.wait()
        self.dialog.reset()
        self.failed.emit(message)
