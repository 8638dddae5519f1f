"""The study browser: search fields over a sortable table of studies; double-click or Enter opens one.

The table model only holds rows; the query lives in app.db.queries, so search and sort are tested
without a window and the model re-queries (server-side sort) when a header is clicked.

The list is live: it re-queries every `worklist_refresh_s` seconds (default 15) while shown, after typing,
and whenever the app says something changed, always on a worker thread so a slow database never freezes
the window (`refresh()` is the synchronous form for scripts and tests). Date presets (Today, Yesterday,
Last 7 days...) replace typing dates; a row's context menu opens, exports, sends or deletes a study.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QDate,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    Qt,
    QTimer,
    Signal,
)
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
    QMenu,
    QPushButton,
    QStyle,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.db.database import Database
from app.db.queries import StudyRow, search_studies, warm_series_kinds
from app.formatting import format_date, person_name
from viewer.widgets.background import BackgroundRunner

ANY_DATE = QDate(1900, 1, 1)  # the date edits' minimum, shown as "any"
# (label, days back for "from", days back for "to"); None: no bound. "Custom" enables the date fields.
DATE_PRESETS: tuple[tuple[str, int | None, int | None], ...] = (
    ("Any date", None, None), ("Today", 0, 0), ("Yesterday", 1, 1), ("Last 7 days", 6, 0),
    ("Last 30 days", 29, 0), ("Last 12 months", 364, 0), ("Custom range", None, None),
)
ROW_ACTIONS: tuple[tuple[str, str], ...] = (
    ("open", "Open"), ("open_with_prior", "Open with prior"), ("export", "Export to folder…"),
    ("export_anonymised", "Export anonymised…"), ("send", "Send to PACS…"), ("delete", "Delete…"),
)
WARM_STUDIES = 20  # the studies at the top of the list whose series are classified before one is opened
MODALITIES = ("", "CR", "DX", "CT", "MR", "US", "MG", "XA", "RF", "NM", "PT", "OT", "SC", "SR")
REPORT_LABELS = {"none": "", "draft": "Draft", "preliminary": "Preliminary", "final": "Final", "amended": "Amended"}


@dataclass(frozen=True)
class Column:
    title: str
    sort_key: str
    text: Callable[[StudyRow], str]


START_WIDTHS = {"Patient": 240, "Patient ID": 110, "Description": 260, "Accession": 120, "Report": 200}
COLUMNS: tuple[Column, ...] = (
    Column("Patient", "name", lambda r: person_name(r.patient_name)),
    Column("Patient ID", "patient_id", lambda r: r.patient_id),
    Column("Date", "date", lambda r: format_date(r.study_date)),
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
KEPT_ROLE = Qt.ItemDataRole.UserRole + 3  # True when the study is kept in this workstation's image cache
KEPT_MARK = "\u25c6 kept here"  # shown in the Images column of a study kept on this workstation


class StudyTableModel(QAbstractTableModel):
    """Rows of StudyRow; `sortRequested(key)` asks the owner to re-query in that order."""

    sortRequested = Signal(str)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[StudyRow] = []
        self.claims: dict[str, Any] = {}  # study uid -> ClaimView: "being read by Dr X" elsewhere
        self.kept: set[str] = set()  # studies kept in this workstation's image cache (never evicted)

    def set_kept(self, kept: set[str]) -> None:
        self.kept = set(kept)
        if self.rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, len(COLUMNS) - 1))

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
            if row.study_uid in self.kept and COLUMNS[index.column()].sort_key == "images":
                text = f"{text}  {KEPT_MARK}"
            return text
        if role == STUDY_UID_ROLE:
            return row.study_uid
        if role == KEPT_ROLE:
            return row.study_uid in self.kept
        if role == Qt.ItemDataRole.ToolTipRole:
            note = f"\nNeeds attention: {row.attention}" if row.attention else ""
            kept = "\nKept on this workstation: never removed from the local image cache" \
                if row.study_uid in self.kept else ""
            return f"Study Instance UID {row.study_uid}{note}{kept}" + (f"\nReport {claim.describe()}" if claim else "")
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
    """Search + table of studies. Emits `studyOpenRequested(study_uid)` on double-click or Enter, and
    `actionRequested(action, study_uid)` from the row context menu (see ROW_ACTIONS)."""

    studyOpenRequested = Signal(str)
    actionRequested = Signal(str, str)
    refreshed = Signal(int)  # number of rows shown, after every (background or direct) refresh

    def __init__(self, database: Database, parent: QWidget | None = None, *, limit: int = 2000,
                 settings: Any = None) -> None:
        super().__init__(parent)
        self.database = database
        self.limit = limit
        self.sort_key = "-date"
        # studies kept in this workstation's image cache (set when an archive is configured; runs off the GUI thread)
        self.kept_provider: Callable[[], set[str]] | None = None
        self._generation = 0
        self._runner = BackgroundRunner(self)  # searches run one at a time, in order
        self._warm_runner = BackgroundRunner(self)  # classifies the listed studies' series (see _warm_kinds)
        self._warm_job: Any = None

        self.name_edit = QLineEdit(placeholderText="name (words in any order, * wildcard)")
        self.id_edit = QLineEdit(placeholderText="patient ID")
        self.accession_edit = QLineEdit(placeholderText="accession")
        self.date_preset = QComboBox()
        self.date_preset.setObjectName("datePreset")
        for label, _a, _b in DATE_PRESETS:
            self.date_preset.addItem(label)
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
        for i, column in enumerate(COLUMNS):  # names and descriptions on one line, not wrapped and cut
            if column.title in START_WIDTHS:
                self.table.horizontalHeader().resizeSection(i, START_WIDTHS[column.title])
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)

        form = QFormLayout()
        row1 = QHBoxLayout()
        row1.addWidget(self.name_edit, 3)
        row1.addWidget(self.id_edit, 1)
        row1.addWidget(self.accession_edit, 1)
        form.addRow("Patient / ID / Accession", row1)
        row2 = QHBoxLayout()
        row2.addWidget(self.date_preset)
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
        self._debounce.timeout.connect(self.refresh_soon)
        for edit in (self.name_edit, self.id_edit, self.accession_edit):
            edit.textChanged.connect(self._debounce.start)
            edit.returnPressed.connect(self.refresh_soon)
        self.modality_combo.currentTextChanged.connect(self._debounce.start)
        self.date_from.dateChanged.connect(self._debounce.start)
        self.date_to.dateChanged.connect(self._debounce.start)
        self.search_button.clicked.connect(self.refresh_soon)
        self.clear_button.clicked.connect(self.clear_filters)
        self.date_preset.currentIndexChanged.connect(self._preset_changed)
        self.model.sortRequested.connect(self._sort_by)
        # `activated` fires on double-click and on Enter/Return (platform rules), once per action.
        self.table.activated.connect(self._open_index)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.context_menu: QMenu | None = None
        self._live = QTimer(self)
        self._live.timeout.connect(self._live_tick)
        self.apply_settings(settings)
        self._preset_changed()
        self.refresh()

    def apply_settings(self, settings: Any) -> None:
        """Live refresh interval from `worklist_refresh_s` (0 turns it off)."""
        seconds = 15.0
        if settings is not None:
            try:
                seconds = float(settings.get("worklist_refresh_s", 15) or 0)
            except (TypeError, ValueError):
                seconds = 15.0
        self._live.stop()
        if seconds > 0:
            self._live.start(int(seconds * 1000))

    def _live_tick(self) -> None:
        if self.isVisible() and not self.table.horizontalScrollBar().isSliderDown():
            self.refresh_soon()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override: what changed while hidden shows at once
        super().showEvent(event)
        self.refresh_soon()

    def _date_edit(self) -> QDateEdit:
        edit = QDateEdit(calendarPopup=True, displayFormat="dd MMM yyyy")
        edit.setMinimumDate(ANY_DATE)
        edit.setSpecialValueText("any")
        edit.setDate(ANY_DATE)
        # the calendar opens on this month, not on January 1900, when no date is set yet
        edit.calendarWidget().setCurrentPage(QDate.currentDate().year(), QDate.currentDate().month())
        return edit

    def _preset_changed(self, *_: Any) -> None:
        label, back_from, back_to = DATE_PRESETS[self.date_preset.currentIndex()]
        custom = label == "Custom range"
        for edit in (self.date_from, self.date_to):
            edit.setEnabled(custom)
            edit.blockSignals(True)
        today = QDate.currentDate()
        if custom:
            if self.date_from.date() == ANY_DATE:
                self.date_from.setDate(today.addDays(-7))
            if self.date_to.date() == ANY_DATE:
                self.date_to.setDate(today)
        else:
            self.date_from.setDate(today.addDays(-back_from) if back_from is not None else ANY_DATE)
            self.date_to.setDate(today.addDays(-back_to) if back_to is not None else ANY_DATE)
        for edit in (self.date_from, self.date_to):
            edit.blockSignals(False)
        self._debounce.start()

    def set_date_preset(self, label: str) -> None:
        i = next((n for n, (text, _a, _b) in enumerate(DATE_PRESETS) if text == label), -1)
        if i < 0:
            raise ValueError(f"unknown date preset {label!r}")
        self.date_preset.setCurrentIndex(i)

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
        self.date_preset.setCurrentIndex(0)
        self.date_from.setDate(ANY_DATE)
        self.date_to.setDate(ANY_DATE)
        self.modality_combo.setCurrentText("")
        self.refresh_soon()

    def _query(self, filters: dict[str, Any], sort: str) -> tuple[list[StudyRow], dict[str, Any], set[str]]:
        """The rows, who is editing which of their reports now (other workstations on the same
        database; a hint: the worklist works without it), and the studies kept on this workstation."""
        with self.database.session() as session:
            rows = search_studies(session, sort=sort, limit=self.limit, **filters)
        try:
            from app.reports.claims import ClaimService

            claims = ClaimService(self.database).holders([r.study_uid for r in rows])
        except Exception:  # noqa: BLE001 - the claims are a hint; the worklist works without them
            claims = {}
        try:
            kept = self.kept_provider() if self.kept_provider is not None else set()
        except Exception:  # noqa: BLE001 - a marker only; the worklist works without it
            kept = set()
        return rows, claims, kept

    def refresh(self) -> None:
        """Re-run the search now, on this thread (scripts and tests; the window uses `refresh_soon`)."""
        self._debounce.stop()
        self._generation += 1
        try:
            found = self._query(self.filters(), self.sort_key)
        except Exception as exc:  # noqa: BLE001 - a failed search is shown, never a crash of the window
            self._on_results(self._generation, None, str(exc))
            return
        self._on_results(self._generation, found, "")

    def refresh_soon(self) -> None:
        """Re-run the search in the background; the table changes when the rows arrive."""
        self._debounce.stop()
        self._generation += 1
        generation, filters, sort, query = self._generation, self.filters(), self.sort_key, self._query
        self._runner.start(lambda _job: query(filters, sort), serial=True,
                           on_done=lambda found: self._on_results(generation, found, ""),
                           on_error=lambda exc: self._on_results(generation, None, str(exc)))  # status line

    def _on_results(self, generation: int, found: tuple | None, error: str) -> None:
        if generation != self._generation:
            return  # a newer search is on its way
        if found is None:
            self.status_label.setText(f"Search failed: {error}")
            return
        rows, claims, kept = found
        selected = self.selected_study_uid()
        if rows != self.model.rows:
            self.model.set_rows(rows)
            if selected:
                self.select_study(selected)
            self._warm_kinds([r.study_uid for r in rows[:WARM_STUDIES]])
        if claims != self.model.claims:
            self.model.set_claims(claims)
        if kept != self.model.kept:
            self.model.set_kept(kept)
        more = " (first results only; narrow the search)" if len(rows) >= self.limit else ""
        self.status_label.setText(f"{len(rows)} studies{more}")
        self._show_sort_indicator()
        self.refreshed.emit(len(rows))

    def _show_sort_indicator(self) -> None:
        """The header arrow always shows the order the rows are in."""
        key = self.sort_key.removeprefix("-")
        col = next((i for i, c in enumerate(COLUMNS) if c.sort_key == key), -1)
        order = Qt.SortOrder.DescendingOrder if self.sort_key.startswith("-") else Qt.SortOrder.AscendingOrder
        header = self.table.horizontalHeader()
        header.blockSignals(True)
        header.setSortIndicator(col, order)
        header.blockSignals(False)

    def _sort_by(self, key: str) -> None:
        self.sort_key = key
        self.refresh_soon()

    def _context_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        self.table.selectRow(index.row())
        uid = self.model.study_uid(index.row())
        menu = QMenu(self)
        menu.setObjectName("worklistMenu")
        actions = list(ROW_ACTIONS)
        if self.kept_provider is not None:  # a local image cache of the archive: the user may keep studies
            actions.insert(-1, ("unpin", "Allow removal") if uid in self.model.kept
                           else ("pin", "Keep on this workstation"))
        for action, label in actions:
            act = menu.addAction(label)
            act.setObjectName(f"worklist_{action}")
            act.triggered.connect(lambda _=False, a=action, u=uid: self.actionRequested.emit(a, u))
            if action == "open":
                menu.setDefaultAction(act)
        self.context_menu = menu
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def _warm_kinds(self, study_uids: list[str]) -> None:
        """Classify the series of the studies at the top of the list in the background: opening one then reads
        no file headers on the GUI thread (app.db.queries.warm_series_kinds). Any earlier warming still
        waiting is cancelled; a failure only means the open classifies them itself."""
        if self._warm_job is not None:
            self._warm_job.cancel()
        database = self.database

        def work(job: Any) -> int:
            with database.session() as session:
                return warm_series_kinds(session, study_uids, job.cancelled)

        self._warm_job = self._warm_runner.start(work, on_error=lambda _exc: None)

    def shutdown(self) -> None:
        self._live.stop()
        self._warm_runner.wait_idle(30.0)
        self._runner.wait(30.0)

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
