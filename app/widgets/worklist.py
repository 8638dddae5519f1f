"""The study browser: search fields over a sortable table of studies; double-click or Enter opens one.

The table model only holds rows; the query lives in app.db.queries, so search and sort are tested
without a window and the model re-queries (server-side sort) when a header is clicked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QDate, QModelIndex, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QDateEdit,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QStyle,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.db.database import Database
from app.db.queries import StudyRow, search_studies

ANY_DATE = QDate(1900, 1, 1)  # the date edits' minimum, shown as "any"
MODALITIES = ("", "CR", "DX", "CT", "MR", "US", "MG", "XA", "RF", "NM", "PT", "OT", "SC", "SR")
REPORT_LABELS = {"none": "", "draft": "Draft", "preliminary": "Preliminary", "final": "Final", "amended": "Amended"}


@dataclass(frozen=True)
class Column:
    title: str
    sort_key: str
    text: Callable[[StudyRow], str]


def _person(name: str) -> str:
    return name.replace("^", " ").strip()


COLUMNS: tuple[Column, ...] = (
    Column("Patient", "name", lambda r: _person(r.patient_name)),
    Column("Patient ID", "patient_id", lambda r: r.patient_id),
    Column("Date", "date", lambda r: r.study_date.isoformat() if r.study_date else ""),
    Column("Modality", "modality", lambda r: r.modalities.replace("\\", "/")),
    Column("Description", "description", lambda r: r.description),
    Column("Accession", "accession", lambda r: r.accession),
    Column("Series", "series", lambda r: str(r.series_count)),
    Column("Images", "images", lambda r: str(r.instance_count)),
    Column("Report", "report_status", lambda r: REPORT_LABELS.get(r.report_status, r.report_status)),
    Column("AI draft", "ai_draft", lambda r: "yes" if r.has_ai_draft else ""),
)

STUDY_UID_ROLE = Qt.ItemDataRole.UserRole + 1
ATTENTION_ROLE = Qt.ItemDataRole.UserRole + 2  # incomplete / conflicting / interrupted ('' = none)


class StudyTableModel(QAbstractTableModel):
    """Rows of StudyRow; `sortRequested(key)` asks the owner to re-query in that order."""

    sortRequested = Signal(str)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[StudyRow] = []
        self.claims: dict[str, Any] = {}  # study uid -> ClaimView: "being read by Dr X" elsewhere

    def set_claims(self, claims: dict[str, Any]) -> None:
        self.claims = dict(claims)
        if self.rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, len(COLUMNS) - 1))

    def set_rows(self, rows: list[StudyRow]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        row = self.rows[index.row()]
        claim = self.claims.get(row.study_uid)
        if role == Qt.ItemDataRole.DisplayRole:
            text = COLUMNS[index.column()].text(row)
            if claim is not None and COLUMNS[index.column()].sort_key == "report_status":
                text = f"{text} · being read by {claim.who}"
            return text
        if role == STUDY_UID_ROLE:
            return row.study_uid
        if role == Qt.ItemDataRole.ToolTipRole:
            note = f"\nNeeds attention: {row.attention}" if row.attention else ""
            return f"Study Instance UID {row.study_uid}{note}" + (f"\nReport {claim.describe()}" if claim else "")
        if role == Qt.ItemDataRole.DecorationRole and row.attention and index.column() == 0:
            return QApplication.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        if role == ATTENTION_ROLE:
            return row.attention
        if role == Qt.ItemDataRole.TextAlignmentRole and COLUMNS[index.column()].sort_key in ("series", "images"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section].title
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        prefix = "-" if order == Qt.SortOrder.DescendingOrder else ""
        self.sortRequested.emit(prefix + COLUMNS[column].sort_key)

    def study_uid(self, row: int) -> str:
        return self.rows[row].study_uid


class WorklistWidget(QWidget):
    """Search + table of studies. Emits `studyOpenRequested(study_uid)` on double-click or Enter."""

    studyOpenRequested = Signal(str)

    def __init__(self, database: Database, parent: QWidget | None = None, *, limit: int = 2000) -> None:
        super().__init__(parent)
        self.database = database
        self.limit = limit
        self.sort_key = "-date"

        self.name_edit = QLineEdit(placeholderText="name (words in any order, * wildcard)")
        self.id_edit = QLineEdit(placeholderText="patient ID")
        self.accession_edit = QLineEdit(placeholderText="accession")
        self.date_from = self._date_edit()
        self.date_to = self._date_edit()
        self.modality_combo = QComboBox(editable=True)
        self.modality_combo.addItems(MODALITIES)
        self.modality_combo.setMinimumContentsLength(5)
        self.modality_combo.setToolTip("modality in any series of the study (empty: all)")
        self.search_button = QPushButton("Search")
        self.clear_button = QPushButton("Clear")
        self.status_label = QLabel()

        self.model = StudyTableModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(2, Qt.SortOrder.DescendingOrder)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)

        form = QFormLayout()
        row1 = QHBoxLayout()
        row1.addWidget(self.name_edit, 3)
        row1.addWidget(self.id_edit, 1)
        row1.addWidget(self.accession_edit, 1)
        form.addRow("Patient / ID / Accession", row1)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("from"))
        row2.addWidget(self.date_from)
        row2.addWidget(QLabel("to"))
        row2.addWidget(self.date_to)
        row2.addWidget(QLabel("modality"))
        row2.addWidget(self.modality_combo)
        row2.addStretch(1)
        row2.addWidget(self.clear_button)
        row2.addWidget(self.search_button)
        form.addRow("Study date", row2)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status_label)

        # Typing searches after a short pause, so each keystroke does not hit the database.
        self._debounce = QTimer(self, singleShot=True, interval=250)
        self._debounce.timeout.connect(self.refresh)
        for edit in (self.name_edit, self.id_edit, self.accession_edit):
            edit.textChanged.connect(self._debounce.start)
            edit.returnPressed.connect(self.refresh)
        self.modality_combo.currentTextChanged.connect(self._debounce.start)
        self.date_from.dateChanged.connect(self._debounce.start)
        self.date_to.dateChanged.connect(self._debounce.start)
        self.search_button.clicked.connect(self.refresh)
        self.clear_button.clicked.connect(self.clear_filters)
        self.model.sortRequested.connect(self._sort_by)
        # `activated` fires on double-click and on Enter/Return (platform rules), once per action.
        self.table.activated.connect(self._open_index)
        self.refresh()

    @staticmethod
    def _date_edit() -> QDateEdit:
        edit = QDateEdit(calendarPopup=True, displayFormat="yyyy-MM-dd")
        edit.setMinimumDate(ANY_DATE)
        edit.setSpecialValueText("any")
        edit.setDate(ANY_DATE)
        return edit

    @staticmethod
    def _date_value(edit: QDateEdit) -> str | None:
        d = edit.date()
        return None if d == ANY_DATE else d.toString("yyyy-MM-dd")

    def filters(self) -> dict[str, Any]:
        return {
            "name": self.name_edit.text(),
            "patient_id": self.id_edit.text(),
            "accession": self.accession_edit.text(),
            "date_from": self._date_value(self.date_from),
            "date_to": self._date_value(self.date_to),
            "modality": self.modality_combo.currentText(),
        }

    def clear_filters(self) -> None:
        for edit in (self.name_edit, self.id_edit, self.accession_edit):
            edit.clear()
        self.date_from.setDate(ANY_DATE)
        self.date_to.setDate(ANY_DATE)
        self.modality_combo.setCurrentText("")
        self.refresh()

    def refresh(self) -> None:
        """Re-run the search with the current filters and sort (e.g. after an import)."""
        self._debounce.stop()
        selected = self.selected_study_uid()
        try:
            with self.database.session() as session:
                rows = search_studies(session, sort=self.sort_key, limit=self.limit, **self.filters())
        except Exception as exc:  # noqa: BLE001 - a failed search is shown, never a crash of the window
            self.status_label.setText(f"Search failed: {exc}")
            return
        self.model.set_rows(rows)
        try:  # who is editing which report now (other workstations on the same database)
            from app.reports.claims import ClaimService

            self.model.set_claims(ClaimService(self.database).holders([r.study_uid for r in rows]))
        except Exception:  # noqa: BLE001 - the claims are a hint; the worklist works without them
            self.model.set_claims({})
        more = " (first results only; narrow the search)" if len(rows) >= self.limit else ""
        self.status_label.setText(f"{len(rows)} studies{more}")
        if selected:
            self.select_study(selected)

    def _sort_by(self, key: str) -> None:
        self.sort_key = key
        self.refresh()

    def selected_study_uid(self) -> str | None:
        index = self.table.currentIndex()
        return self.model.study_uid(index.row()) if index.isValid() else None

    def select_study(self, study_uid: str) -> bool:
        for row, r in enumerate(self.model.rows):
            if r.study_uid == study_uid:
                self.table.selectRow(row)
                return True
        return False

    def _open_index(self, index: QModelIndex) -> None:
        if index.isValid():
            self.studyOpenRequested.emit(self.model.study_uid(index.row()))
