"""Importing off the GUI thread: a controller that runs ImportService in a background job, and a dialog with
progress bar, Cancel and the import report (path + reason per refused file) at the end."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.db.database import Database
from app.importer import ImportReport, ImportService
from viewer.widgets.background import BackgroundRunner, Job

_frozen = False


def _freeze_long_lived_objects() -> None:
    """Hide what is alive now (modules, widgets) from Python's cyclic GC, once per process.

    An import allocates enough to trigger full collections in the worker thread; each one walks every
    object in the process while holding the GIL, which froze the GUI for ~250 ms at a time on a
    10,000-file import. After gc.freeze() those collections only walk the import's own objects.
    """
    global _frozen
    if not _frozen:
        gc.freeze()
        _frozen = True


class ImportController(QObject):
    """Starts, tracks and cancels one background import at a time."""

    progress = Signal(int, int)  # done, total (total 0 while the sources are being scanned)
    finished = Signal(object)  # ImportReport (cancelled flag set when Cancel was used)
    failed = Signal(str)  # the import could not run at all

    def __init__(self, database: Database, parent: QObject | None = None, *, commit_every: int = 200) -> None:
        super().__init__(parent)
        self.service = ImportService(database, commit_every=commit_every)
        self._runner = BackgroundRunner(self)
        self._thread: Job | None = None
        self.report: ImportReport | None = None

    def is_running(self) -> bool:
        """An import is running or its report has not been handed over yet."""
        return self._thread is not None and self._thread.running()

    def start(self, sources: Sequence[str | Path]) -> None:
        if self.is_running():
            raise RuntimeError("an import is already running")
        self.report = None
        _freeze_long_lived_objects()
        service, paths = self.service, [str(s) for s in sources]
        self._thread = self._runner.start(
            lambda job: service.run(paths, progress=job.progress, cancel=job.cancel_event),
            on_done=self._on_completed, on_error=self._on_crashed, on_progress=self.progress.emit)

    def cancel(self) -> None:
        """Ask the import to stop after the file in hand; what is committed stays consistent."""
        if self._thread is not None:
            self._thread.cancel()

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the import's thread has ended (its report arrives with the event loop)."""
        return self._runner.wait(msecs / 1000)

    def _on_completed(self, report: ImportReport) -> None:
        self.report = report
        self.finished.emit(report)

    def _on_crashed(self, exc: BaseException) -> None:  # e.g. the database went away: reported, not a crash
        self.failed.emit(f"{type(exc).__name__}: {exc}")


class ImportDialog(QDialog):
    """Pick sources, watch progress, cancel, read the report. Starts at once when given sources."""

    importFinished = Signal(object)  # ImportReport

    def __init__(
        self,
        database: Database,
        sources: Sequence[str | Path] | None = None,
        parent: QWidget | None = None,
        *,
        autostart: bool = True,
        commit_every: int = 200,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import DICOM")
        self.resize(820, 520)
        self.controller = ImportController(database, self, commit_every=commit_every)

        self.source_list = QListWidget()
        self.source_list.setMaximumHeight(90)
        self.add_folder_button = QPushButton("Add folder…")
        self.add_files_button = QPushButton("Add files…")
        self.start_button = QPushButton("Import")
        self.cancel_button = QPushButton("Cancel")
        self.close_button = QPushButton("Close")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status_label = QLabel("Choose folders, files, a DICOMDIR or a zip to import.")
        self.status_label.setWordWrap(True)
        self.show_duplicates = QCheckBox("Also list files already present")
        self.report_table = QTableWidget(0, 3)
        self.report_table.setHorizontalHeaderLabels(["Result", "File", "Reason"])
        self.report_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.report_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.report_table.verticalHeader().setVisible(False)
        header = self.report_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.report_table.setColumnWidth(1, 380)

        top = QHBoxLayout()
        top.addWidget(self.source_list, 1)
        side = QVBoxLayout()
        side.addWidget(self.add_folder_button)
        side.addWidget(self.add_files_button)
        side.addStretch(1)
        top.addLayout(side)
        buttons = QHBoxLayout()
        buttons.addWidget(self.show_duplicates)
        buttons.addStretch(1)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.report_table, 1)
        layout.addLayout(buttons)

        self.add_folder_button.clicked.connect(self._pick_folder)
        self.add_files_button.clicked.connect(self._pick_files)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        self.show_duplicates.toggled.connect(self._fill_report)
        self.controller.progress.connect(self._on_progress)
        self.controller.finished.connect(self._on_finished)
        self.controller.failed.connect(self._on_failed)
        self._set_running(False)
        for s in sources or ():
            self.add_source(s)
        if sources and autostart:
            QTimer.singleShot(0, self.start)

    # -- sources ---------------------------------------------------------------------------------
    def sources(self) -> list[str]:
        return [self.source_list.item(i).text() for i in range(self.source_list.count())]

    def add_source(self, source: str | Path) -> None:
        if str(source) not in self.sources():
            self.source_list.addItem(str(source))
        self.start_button.setEnabled(not self.controller.is_running())

    def _pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import a folder of DICOM files")
        if folder:
            self.add_source(folder)

    def _pick_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Import DICOM files, a DICOMDIR or a zip", "", "DICOM (*.dcm DICOMDIR *.zip);;All files (*)"
        )
        for f in files:
            self.add_source(f)

    # -- running ---------------------------------------------------------------------------------
    def start(self) -> None:
        sources = self.sources()
        if not sources or self.controller.is_running():
            return
        self.report_table.setRowCount(0)
        self.progress_bar.setRange(0, 0)  # busy until the files are counted
        self.status_label.setText("Looking for files…")
        self._set_running(True)
        self.controller.start(sources)

    def cancel(self) -> None:
        if self.controller.is_running():
            self.status_label.setText("Cancelling after the current file…")
            self.cancel_button.setEnabled(False)
            self.controller.cancel()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running and bool(self.sources()))
        self.add_folder_button.setEnabled(not running)
        self.add_files_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.close_button.setEnabled(not running)

    def _on_progress(self, done: int, total: int) -> None:
        if total <= 0:
            self.progress_bar.setRange(0, 0)
            return
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(done)
        if self.cancel_button.isEnabled():
            self.status_label.setText(f"Importing {done} of {total} files…")

    def _on_finished(self, report: ImportReport) -> None:
        self._set_running(False)
        total = max(report.total, 1)
        self.progress_bar.setRange(0, total)
        done = report.imported + report.duplicates + report.failed
        self.progress_bar.setValue(min(done, total) if report.cancelled else total)
        problems = len(report.errors)
        tail = f" See the {problems} reason(s) below." if problems else ""
        self.status_label.setText(report.summary().capitalize() + "." + tail)
        self._fill_report()
        self.importFinished.emit(report)

    def _on_failed(self, message: str) -> None:
        self._set_running(False)
        self.progress_bar.setRange(0, 1)
        self.status_label.setText(f"The import could not run: {message}")

    def _fill_report(self) -> None:
        report = self.controller.report
        if report is None:
            return
        rows = [i for i in report.issues if self.show_duplicates.isChecked() or i.severity != "duplicate"]
        labels = {"error": "Not imported", "warning": "Imported, warning", "duplicate": "Already present"}
        self.report_table.setRowCount(len(rows))
        for r, issue in enumerate(rows):
            for c, text in enumerate((labels.get(issue.severity, issue.severity), issue.path, issue.reason)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.report_table.setItem(r, c, item)

    def report_rows(self) -> list[tuple[str, str, str]]:
        """The report table's text, row by row (what the user reads)."""
        return [
            tuple(self.report_table.item(r, c).text() for c in range(3))  # type: ignore[misc]
            for r in range(self.report_table.rowCount())
        ]

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.controller.is_running():  # never leave a thread writing behind a closed window
            self.controller.cancel()
            self.controller.wait()
        super().closeEvent(event)

    def done(self, result: int) -> None:
        if self.controller.is_running():
            self.controller.cancel()
            self.controller.wait()
        super().done(result)
