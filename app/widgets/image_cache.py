"""Tools > Local image cache: the studies whose images this workstation holds, with size, last opened, whether
they are kept here, and their report status; the cache limit and its use; "Remove from this workstation"
(refused, with the reason, for the open study, a kept one, or one whose report is in progress) and
"Keep on this workstation" / "Allow removal". Sizing the store walks every file, so listing and removing
run off the GUI thread (app.widgets.background_job).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy import select

from app.db.models import Patient, Study
from app.formatting import format_date, format_datetime, person_name
from app.widgets.archive_fetch import ArchiveFetchController
from app.widgets.background_job import BackgroundJob

COLUMNS = ("Patient", "Date", "Description", "Size", "Last opened", "Kept here", "Report")
TITLE = "Local image cache"


@dataclass(frozen=True)
class CacheRow:
    study_uid: str
    patient: str
    study_date: str
    description: str
    size: int
    last_opened: float
    kept: str  # why it is kept ('' when it may be evicted)
    report_status: str


@dataclass(frozen=True)
class CacheListing:
    rows: list[CacheRow]
    usage: int
    limit: int


def list_cache(controller: ArchiveFetchController) -> CacheListing:
    """The cache as the view shows it (walks the store: call off the GUI thread)."""
    studies = controller.cache.studies()
    pinned = controller.cache.pinned()
    uids = [s.study_uid for s in studies]
    with controller.database.session() as session:
        info = {uid: (name, date, desc, status) for uid, name, date, desc, status in session.execute(
            select(Study.study_uid, Patient.name, Study.study_date, Study.description, Study.report_status)
            .join(Patient, Study.patient_db_id == Patient.id).where(Study.study_uid.in_(uids))).all()}
    rows = []
    for s in sorted(studies, key=lambda s: -s.last_used):  # most recently opened first
        name, date, desc, status = info.get(s.study_uid, ("", None, "(not in the database)", "none"))
        rows.append(CacheRow(s.study_uid, person_name(name or ""), format_date(date), desc or "", s.size,
                             s.last_used, pinned.get(s.study_uid, ""), status or "none"))
    return CacheListing(rows, sum(s.size for s in studies), controller.cache.limit_bytes)


def opened_text(last_opened: float) -> str:
    """When a study was last opened (a POSIX timestamp) in the app's one date-time format, local time, as
    the worklist and the report show dates ('' for never)."""
    return format_datetime(dt.datetime.fromtimestamp(last_opened, tz=dt.UTC)) if last_opened else ""


def format_size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


class ImageCacheDialog(QDialog):
    """The local image cache of this workstation (needs the archive setting: without an archive, removing
    a study's files would lose its images)."""

    def __init__(self, controller: ArchiveFetchController, open_study_uid: Callable[[], str],
                 user_name: Callable[[], str] = lambda: "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(TITLE)
        self.resize(1000, 420)
        self.controller, self._open_uid, self._user = controller, open_study_uid, user_name
        self.listing: CacheListing | None = None
        self._job: BackgroundJob | None = None
        self.summary = QLabel("Reading the local image cache…")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        for column in range(len(COLUMNS)):  # names and dates whole; the description takes what is left
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch if column == 2
                                        else QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._sync_buttons)
        self.remove_button = QPushButton("Remove from this workstation")
        self.keep_button = QPushButton("Keep on this workstation")
        self.allow_button = QPushButton("Allow removal")
        self.refresh_button = QPushButton("Refresh")
        close = QPushButton("Close")
        for name, button in (("remove_button", self.remove_button), ("keep_button", self.keep_button),
                             ("allow_button", self.allow_button), ("refresh_button", self.refresh_button)):
            button.setObjectName(name)
        self.remove_button.clicked.connect(self.remove_selected)
        self.keep_button.clicked.connect(lambda: self._set_kept(True))
        self.allow_button.clicked.connect(lambda: self._set_kept(False))
        self.refresh_button.clicked.connect(self.refresh)
        close.clicked.connect(self.accept)
        buttons = QHBoxLayout()
        for button in (self.remove_button, self.keep_button, self.allow_button, self.refresh_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self._sync_buttons()
        self.refresh()

    # -- listing ----------------------------------------------------------------------------------------
    def busy(self) -> bool:
        return self._job is not None

    def refresh(self) -> None:
        controller = self.controller
        self._run("Reading the local image cache", lambda _p, _c: list_cache(controller), self._show)

    def _show(self, listing: object) -> None:
        assert isinstance(listing, CacheListing)
        self.listing = listing
        selected = self.selected_uid()
        if listing.limit:
            share = f" ({100 * listing.usage / listing.limit:.1f} %)"
            self.summary.setText(f"Cache limit {format_size(listing.limit)}; in use {format_size(listing.usage)}"
                                 f"{share}; {len(listing.rows)} studies. The least recently opened are removed "
                                 "first when it is full, never a kept one or one whose report is in progress.")
        else:
            self.summary.setText(f"No cache limit; in use {format_size(listing.usage)}; {len(listing.rows)} studies.")
        self.table.setRowCount(len(listing.rows))
        for r, row in enumerate(listing.rows):
            cells = (row.patient, row.study_date, row.description, format_size(row.size), opened_text(row.last_opened),
                     "yes" if row.kept else "", row.report_status if row.report_status != "none" else "")
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(row.kept if c == 5 and row.kept else f"Study Instance UID {row.study_uid}")
                self.table.setItem(r, c, item)
            if row.study_uid == selected:
                self.table.selectRow(r)
        self._sync_buttons()

    def selected_uid(self) -> str:
        rows = self.table.selectionModel().selectedRows()
        if not rows or self.listing is None or rows[0].row() >= len(self.listing.rows):
            return ""
        return self.listing.rows[rows[0].row()].study_uid

    def _sync_buttons(self) -> None:
        uid = self.selected_uid()
        row = next((r for r in self.listing.rows if r.study_uid == uid), None) if self.listing else None
        idle = self._job is None
        self.remove_button.setEnabled(idle and row is not None)
        self.keep_button.setEnabled(idle and row is not None and not row.kept)
        self.allow_button.setEnabled(idle and row is not None and bool(row.kept))
        self.refresh_button.setEnabled(idle)

    # -- actions ----------------------------------------------------------------------------------------
    def remove_selected(self) -> None:
        uid = self.selected_uid()
        if not uid:
            return
        why = self.controller.removal_refused(uid, self._open_uid())
        if why:
            QMessageBox.information(self, TITLE, f"Not removed: {why}.")
            return
        answer = QMessageBox.question(self, TITLE, "Remove this study's images from this workstation? They "
                                      "stay in the archive and are fetched again when the study is opened.")
        if answer != QMessageBox.StandardButton.Yes:
            return
        cache = self.controller.cache
        self._run("Removing the study's images", lambda _p, _c: cache.remove(uid), lambda _freed: self.refresh())

    def _set_kept(self, keep: bool) -> None:
        uid = self.selected_uid()
        if not uid:
            return
        if keep:
            self.controller.pin(uid, self._user())
        else:
            self.controller.unpin(uid)
        self.refresh()

    def _run(self, title: str, work, done) -> None:  # type: ignore[no-untyped-def]
        if self._job is not None:
            return
        job = BackgroundJob(title, work, self)
        job.finished.connect(lambda result: (self._job_ended(), done(result)))
        job.failed.connect(lambda msg: (self._job_ended(), QMessageBox.warning(self, TITLE, f"{title} failed: {msg}")))
        self._job = job.start()
        self._sync_buttons()

    def _job_ended(self) -> None:
        self._job = None
        self._sync_buttons()

    def done(self, result: int) -> None:  # noqa: D401 - Qt override: never leave a worker running behind
        if self._job is not None:
            self._job.worker.wait()
        super().done(result)
