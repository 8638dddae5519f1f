"""Running PACS work off the GUI thread: a QThread around one callable, relaying progress and result.

The callable gets `(emit_progress, cancel)`; PacsError messages reach the GUI as they are (they are
written for users), anything else is reported as an unexpected error rather than crashing the window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal

from app.pacs.cancel import CancelToken
from app.pacs.errors import PacsError

log = logging.getLogger(__name__)

Task = Callable[[Callable[[object], None], CancelToken], Any]


class PacsWorker(QThread):
    """One background PACS task. Connect to the signals, then `start()`; `cancel()` is thread-safe."""

    progressed = Signal(object)
    completed = Signal(object)
    failed = Signal(str)

    def __init__(self, task: Task, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.task = task
        self.token = CancelToken()

    def cancel(self) -> None:
        self.token.cancel()

    def run(self) -> None:
        try:
            result = self.task(self.progressed.emit, self.token)
        except PacsError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - shown to the user, never a crash of the GUI
            log.exception("PACS task failed")
            self.failed.emit(f"unexpected error: {type(exc).__name__}: {exc}")
            return
        self.completed.emit(result)


def start_worker(
    task: Task,
    *,
    on_progress: Callable[[object], None] | None = None,
    on_done: Callable[[object], None] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> PacsWorker:
    """Start `task` in a PacsWorker owned by the application, so closing the window that started it never
    destroys a running thread; pass bound methods of QObjects as callbacks (Qt drops them if the receiver
    is deleted first)."""
    worker = PacsWorker(task, QCoreApplication.instance())
    if on_progress is not None:
        worker.progressed.connect(on_progress)
    if on_done is not None:
        worker.completed.connect(on_done)
    if on_error is not None:
        worker.failed.connect(on_error)
    worker.finished.connect(worker.deleteLater)
    worker.start()
    return worker
