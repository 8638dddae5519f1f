"""PACS query panel: search fields, study and series tables, Retrieve with per-study progress and Cancel.

All network work (C-FIND / QIDO searches, series listing, retrieval) runs in background jobs
(app.widgets.pacs_worker); the tables are Qt models over the plain result dataclasses. Bad criteria are reported, never cleared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.db.database import Database
from app.pacs.clients import client_for, find_studies_recorded
from app.pacs.errors import PacsError
from app.pacs.nodes import NodeStore, PacsNode, StorageScpConfig
from app.pacs.query import QueryFilter, StudyResult
from app.pacs.retrieve import RetrieveService, StudyProgress, StudyRetrieveResult
from app.pacs.scp import StorageScp
from app.settings import Settings, current_settings
from app.widgets.pacs_worker import start_worker
from viewer.widgets.background import BackgroundRunner, Job

MODALITIES = ("", "CT", "MR", "CR", "DX", "US", "MG", "NM", "PT", "XA", "RF", "OT")


def _fmt_date(text: str) -> str:
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


class _RowsModel(QAbstractTableModel):
    """A read-only table over a list of dataclasses; `columns` are (header, getter)."""

    columns: tuple[tuple[str, Any], ...] = ()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[Any] = []

    def set_rows(self, rows: Sequence[Any]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        value = self.columns[index.column()][1](self.rows[index.row()])
        return "" if value is None else str(value)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section][0]
        return None


class StudyResultsModel(_RowsModel):
    columns = (
        ("Patient", lambda r: r.patient_name.replace("^", " ").strip()),
        ("Patient ID", lambda r: r.patient_id),
        ("Date", lambda r: _fmt_date(r.study_date)),
        ("Modality", lambda r: r.modalities),
        ("Description", lambda r: r.description),
        ("Accession", lambda r: r.accession),
        ("Series", lambda r: r.series_count),
        ("Images", lambda r: r.instance_count),
    )


class SeriesResultsModel(_RowsModel):
    columns = (
        ("#", lambda r: r.number),
        ("Modality", lambda r: r.modality),
        ("Description", lambda r: r.description),
        ("Images", lambda r: r.instance_count),
    )


class PacsQueryPanel(QWidget):
    """Search a configured PACS and retrieve studies into `database` in the background."""

    studiesRetrieved = Signal(list)  # noqa: N815 - study UIDs now (fully or partly) local
    searchFinished = Signal(int)  # noqa: N815 - number of studies found (-1: failed)
    retrievalFinished = Signal(list)  # noqa: N815 - list[StudyRetrieveResult]
    retrievalProgress = Signal(object)  # noqa: N815 - StudyProgress, after the table shows it

    def __init__(
        self,
        database: Database,
        settings: Settings | None = None,
        *,
        scp: StorageScp | None = None,
        scp_config: StorageScpConfig | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.database = database
        self.settings = settings or current_settings()
        self.scp = scp
        self.scp_config = scp_config
        self._runner = BackgroundRunner(self)
        self._search_worker: Job | None = None
        self._series_worker: Job | None = None
        self._retrieve_worker: Job | None = None
        self._progress_rows: dict[str, int] = {}

        self.node_combo = QComboBox()
        self.patient_name = QLineEdit()
        self.patient_name.setPlaceholderText("DOE or DOE^J*")
        self.patient_id = QLineEdit()
        self.accession = QLineEdit()
        self.date_from = QLineEdit()
        self.date_from.setPlaceholderText("YYYY-MM-DD")
        self.date_to = QLineEdit()
        self.date_to.setPlaceholderText("YYYY-MM-DD")
        self.modality = QComboBox()
        self.modality.setEditable(True)
        self.modality.addItems(MODALITIES)
        self.description = QLineEdit()
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        for field in (self.patient_name, self.patient_id, self.accession, self.date_from, self.date_to,
                      self.description):
            field.returnPressed.connect(self.search)

        grid = QGridLayout()
        grid.addWidget(QLabel("PACS"), 0, 0)
        grid.addWidget(self.node_combo, 0, 1)
        grid.addWidget(QLabel("Patient name"), 0, 2)
        grid.addWidget(self.patient_name, 0, 3)
        grid.addWidget(QLabel("Patient ID"), 0, 4)
        grid.addWidget(self.patient_id, 0, 5)
        grid.addWidget(QLabel("Accession"), 1, 0)
        grid.addWidget(self.accession, 1, 1)
        grid.addWidget(QLabel("From"), 1, 2)
        grid.addWidget(self.date_from, 1, 3)
        grid.addWidget(QLabel("To"), 1, 4)
        grid.addWidget(self.date_to, 1, 5)
        grid.addWidget(QLabel("Modality"), 2, 0)
        grid.addWidget(self.modality, 2, 1)
        grid.addWidget(QLabel("Description"), 2, 2)
        grid.addWidget(self.description, 2, 3)
        grid.addWidget(self.search_button, 2, 5)

        self.studies = StudyResultsModel(self)
        self.study_view = QTableView()
        self.study_view.setModel(self.studies)
        self.study_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.study_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.study_view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.study_view.horizontalHeader().setStretchLastSection(True)
        self.study_view.selectionModel().currentRowChanged.connect(self._current_study_changed)
        self.series = SeriesResultsModel(self)
        self.series_view = QTableView()
        self.series_view.setModel(self.series)
        self.series_view.horizontalHeader().setStretchLastSection(True)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.study_view)
        split.addWidget(self.series_view)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)

        self.retrieve_button = QPushButton("Retrieve")
        self.retrieve_button.clicked.connect(self.retrieve_selected)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_retrieval)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        actions = QHBoxLayout()
        actions.addWidget(self.retrieve_button)
        actions.addWidget(self.cancel_button)
        actions.addWidget(self.status, 1)

        self.progress_table = QTableWidget(0, 4)
        self.progress_table.setHorizontalHeaderLabels(["Study", "State", "Progress", "Message"])
        self.progress_table.horizontalHeader().setStretchLastSection(True)
        self.progress_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)

        layout = QVBoxLayout(self)
        form = QFormLayout()
        form.addRow(grid)
        layout.addLayout(form)
        layout.addWidget(split, 3)
        layout.addLayout(actions)
        layout.addWidget(self.progress_table, 1)
        self.reload_nodes()

    # ------------------------------------------------------------------ nodes
    def reload_nodes(self) -> None:
        current = self.node_combo.currentText()
        self.node_combo.clear()
        try:
            nodes = NodeStore(self.settings).load()
        except PacsError as exc:
            self._say(f"saved PACS nodes cannot be read: {exc}", error=True)
            nodes = []
        for node in nodes:
            self.node_combo.addItem(node.name, node)
        if current:
            self.node_combo.setCurrentIndex(max(0, self.node_combo.findText(current)))
        if not nodes:
            self._say("No PACS configured: add one in the PACS nodes settings.", error=True)

    def current_node(self) -> PacsNode | None:
        node = self.node_combo.currentData()
        return node if isinstance(node, PacsNode) else None

    def query_filter(self) -> QueryFilter:
        return QueryFilter(
            patient_name=self.patient_name.text(),
            patient_id=self.patient_id.text(),
            accession=self.accession.text(),
            date_from=self.date_from.text(),
            date_to=self.date_to.text(),
            modality=self.modality.currentText(),
            study_description=self.description.text(),
        )

    # ------------------------------------------------------------------ search
    def search(self) -> None:
        node = self.current_node()
        if node is None:
            self._say("Choose a PACS first.", error=True)
            return
        if self._search_worker is not None:
            return  # one search at a time; the button is disabled meanwhile
        try:
            query = self.query_filter().normalized()
            client = client_for(node)
        except PacsError as exc:
            self._say(str(exc), error=True)
            self.searchFinished.emit(-1)
            return
        self.search_button.setEnabled(False)
        self._say(f"Searching {node.name}...")
        self._search_worker = start_worker(
            self._runner,
            lambda _p, _c: find_studies_recorded(client, self.database, query), on_done=self._found,
            on_error=self._search_failed
        )

    def _found(self, results: object) -> None:
        self._search_worker = None
        self.search_button.setEnabled(True)
        rows = list(results)  # type: ignore[call-overload]
        self.studies.set_rows(rows)
        self.series.set_rows([])
        self._say(f"{len(rows)} stud{'y' if len(rows) == 1 else 'ies'} found")
        self.searchFinished.emit(len(rows))

    def _search_failed(self, message: str) -> None:
        self._search_worker = None
        self.search_button.setEnabled(True)
        self._say(f"Search failed: {message}", error=True)
        self.searchFinished.emit(-1)

    def _current_study_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        node = self.current_node()
        if not current.isValid() or node is None:
            return
        study: StudyResult = self.studies.rows[current.row()]
        client = client_for(node)
        self.series.set_rows([])
        self._series_worker = start_worker(
            self._runner,
            lambda _p, _c: (study.study_uid, client.find_series(study.study_uid)),
            on_done=self._series_found,
            on_error=self._series_failed,
        )

    def _series_found(self, payload: object) -> None:
        self._series_worker = None
        study_uid, series = payload  # type: ignore[misc]
        current = self.study_view.currentIndex()
        if current.isValid() and self.studies.rows[current.row()].study_uid == study_uid:
            self.series.set_rows(series)

    def _series_failed(self, message: str) -> None:
        self._series_worker = None
        self._say(f"Series listing failed: {message}", error=True)

    # ------------------------------------------------------------------ retrieve
    def selected_studies(self) -> list[StudyResult]:
        rows = sorted({i.row() for i in self.study_view.selectionModel().selectedRows()})
        return [self.studies.rows[r] for r in rows]

    def retrieve_selected(self) -> None:
        self.retrieve(self.selected_studies())

    def retrieve(self, studies: Sequence[StudyResult]) -> None:
        node = self.current_node()
        if node is None or not studies:
            self._say("Select one or more studies to retrieve." if node else "Choose a PACS first.", error=True)
            return
        if self._retrieve_worker is not None:
            self._say("A retrieval is already running; cancel it or wait.", error=True)
            return
        try:
            service = RetrieveService(self.database, node, scp=self.scp, scp_config=self.scp_config)
        except PacsError as exc:
            self._say(str(exc), error=True)
            return
        uids = [s.study_uid for s in studies]
        self.progress_table.setRowCount(0)
        self._progress_rows.clear()
        for study in studies:
            self._add_progress_row(study)
        self.retrieve_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._say(f"Retrieving {len(uids)} stud{'y' if len(uids) == 1 else 'ies'} from {node.name}...")
        self._retrieve_worker = start_worker(
            self._runner,
            lambda emit, cancel: service.retrieve_studies(uids, emit, cancel),
            on_progress=self._on_progress,
            on_done=self._retrieved,
            on_error=self._retrieve_failed,
        )

    def cancel_retrieval(self) -> None:
        if self._retrieve_worker is not None:
            self._retrieve_worker.cancel()
            self.cancel_button.setEnabled(False)
            self._say("Cancelling: instances already received are kept; retrieve again to resume.")

    def _add_progress_row(self, study: StudyResult) -> None:
        row = self.progress_table.rowCount()
        self.progress_table.insertRow(row)
        label = f"{study.patient_name.replace('^', ' ').strip()} {_fmt_date(study.study_date)} {study.description}"
        item = QTableWidgetItem(label.strip() or study.study_uid)
        item.setToolTip(study.study_uid)
        self.progress_table.setItem(row, 0, item)
        self.progress_table.setItem(row, 1, QTableWidgetItem("queued"))
        bar = QProgressBar()
        bar.setRange(0, 1)
        bar.setValue(0)
        self.progress_table.setCellWidget(row, 2, bar)
        self.progress_table.setItem(row, 3, QTableWidgetItem(""))
        self._progress_rows[study.study_uid] = row

    def _on_progress(self, progress: object) -> None:
        if not isinstance(progress, StudyProgress) or progress.study_uid not in self._progress_rows:
            return
        row = self._progress_rows[progress.study_uid]
        self.progress_table.item(row, 1).setText(progress.state)
        bar = self.progress_table.cellWidget(row, 2)
        if isinstance(bar, QProgressBar):
            if progress.total:
                bar.setRange(0, progress.total)
                bar.setValue(min(progress.done, progress.total))
                bar.setFormat(f"{progress.done}/{progress.total}")
            elif progress.state in ("listing", "running"):
                bar.setRange(0, 0)  # busy until the PACS says how many instances there are
        if progress.message:
            self.progress_table.item(row, 3).setText(progress.message)
        self.retrievalProgress.emit(progress)

    def progress_state(self, study_uid: str) -> tuple[str, str]:
        """(state, message) shown for a study in the progress table (for tests and status bars)."""
        row = self._progress_rows[study_uid]
        return self.progress_table.item(row, 1).text(), self.progress_table.item(row, 3).text()

    def _finish_retrieval(self) -> None:
        self._retrieve_worker = None
        self.retrieve_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _retrieved(self, results: object) -> None:
        self._finish_retrieval()
        results = list(results)  # type: ignore[call-overload]
        for r in results:
            if isinstance(r, StudyRetrieveResult) and r.study_uid in self._progress_rows:
                row = self._progress_rows[r.study_uid]
                self.progress_table.item(row, 1).setText(r.state)
                self.progress_table.item(row, 3).setText(r.message)
                bar = self.progress_table.cellWidget(row, 2)
                if isinstance(bar, QProgressBar) and bar.maximum() == 0:
                    bar.setRange(0, 1)
                    bar.setValue(1 if r.ok else 0)
        counts: dict[str, int] = {}
        for r in results:
            counts[r.state] = counts.get(r.state, 0) + 1
        summary = ", ".join(f"{n} {state}" for state, n in counts.items())
        self._say(f"Retrieval finished: {summary}", error=any(r.state in ("failed", "partial") for r in results))
        local = [r.study_uid for r in results if r.state in ("done", "partial") or r.local]
        if local:
            self.studiesRetrieved.emit(local)
        self.retrievalFinished.emit(results)

    def _retrieve_failed(self, message: str) -> None:
        self._finish_retrieval()
        self._say(f"Retrieval failed: {message}", error=True)
        self.retrievalFinished.emit([])

    def _say(self, message: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #b00020;" if error else "")
        self.status.setText(message)

    def is_busy(self) -> bool:
        return any(w is not None for w in (self._search_worker, self._series_worker, self._retrieve_worker))
