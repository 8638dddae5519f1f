"""A long study action (export, send) with a progress dialog and Cancel, run by the GUI's one background
helper (`viewer.widgets.background.BackgroundRunner`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QProgressDialog, QWidget

from viewer.widgets.background import BackgroundRunner, Job


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
        self.work = work
        self.runner = BackgroundRunner(self)
        self.job: Job | None = None

    def start(self) -> BackgroundJob:
        work = self.work
        self.job = self.runner.start(lambda job: work(job.progress, job.cancelled), on_done=self._done,
                                     on_error=self._failed, on_progress=self._progress)
        self.dialog.canceled.connect(self.job.cancel)
        return self

    def _progress(self, n: int, total: int) -> None:
        self.dialog.setMaximum(total)
        self.dialog.setValue(n)

    def _done(self, result: Any) -> None:
        self.dialog.reset()
        self.finished.emit(result)

    def _failed(self, exc: BaseException) -> None:
        self.dialog.reset()
        self.failed.emit(str(exc) or type(exc).__name__)
