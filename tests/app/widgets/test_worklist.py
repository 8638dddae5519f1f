"""The worklist widget, driven offscreen: search filters the table, sorting, opening a study."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from PySide6.QtCore import QDate, Qt
from pytestqt.qtbot import QtBot

from app.db.database import Database
from app.importer import ImportService
from app.widgets.worklist import COLUMNS, WorklistWidget
from tests.support.synthetic_dicom import SyntheticStudy, write_series


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    database = Database.open()
    studies = [
        SyntheticStudy("DOE^JOHN", "P100", date(2024, 3, 1), "ACC-100", "CT CHEST", "CT"),
        SyntheticStudy("ROE^JANE", "P200", date(2023, 6, 15), "ACC-200", "MR BRAIN", "MR"),
        SyntheticStudy("SMITH^ANNA", "Q300", date(2022, 1, 10), "XY-300", "CHEST PA", "DX"),
    ]
    for i, study in enumerate(studies):
        write_series(tmp_path / "src" / str(i), study, i + 1)
    assert ImportService(database).run([tmp_path / "src"]).imported == 6
    yield database
    database.dispose()


def _names(widget: WorklistWidget) -> list[str]:
    return [r.patient_name for r in widget.model.rows]


def test_shows_all_studies_with_columns(qtbot: QtBot, db: Database) -> None:
    w = WorklistWidget(db)
    qtbot.addWidget(w)
    assert _names(w) == ["DOE^JOHN", "ROE^JANE", "SMITH^ANNA"]
    assert w.model.columnCount() == len(COLUMNS)
    headers = [w.model.headerData(c, Qt.Orientation.Horizontal) for c in range(len(COLUMNS))]
    assert {"Patient", "Report", "AI draft", "Images", "Series"} <= set(headers)
    texts = [w.model.data(w.model.index(2, c)) for c in range(len(COLUMNS))]
    assert texts[:8] == ["SMITH, ANNA", "Q300", "10 Jan 2022", "DX", "CHEST PA", "XY-300", "1", "3"]
    assert "3 studies" in w.status_label.text()


def test_search_fields_filter_the_table(qtbot: QtBot, db: Database) -> None:
    w = WorklistWidget(db)
    qtbot.addWidget(w)
    qtbot.keyClicks(w.name_edit, "jane")
    qtbot.waitUntil(lambda: _names(w) == ["ROE^JANE"], timeout=30000)
    w.name_edit.clear()
    w.id_edit.setText("P")
    w.refresh()
    assert _names(w) == ["DOE^JOHN", "ROE^JANE"]
    w.id_edit.clear()
    w.modality_combo.setCurrentText("DX")
    w.refresh()
    assert _names(w) == ["SMITH^ANNA"]
    w.modality_combo.setCurrentText("")
    w.date_from.setDate(QDate(2023, 1, 1))
    w.date_to.setDate(QDate(2023, 12, 31))
    w.refresh()
    assert _names(w) == ["ROE^JANE"]
    w.clear_filters()
    w.accession_edit.setText("xy")
    qtbot.keyClick(w.accession_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: _names(w) == ["SMITH^ANNA"], timeout=30000)


def test_clicking_headers_sorts(qtbot: QtBot, db: Database) -> None:
    w = WorklistWidget(db)
    qtbot.addWidget(w)
    images = [c.sort_key for c in COLUMNS].index("images")
    header = w.table.horizontalHeader()
    w.table.sortByColumn(images, Qt.SortOrder.DescendingOrder)
    qtbot.waitUntil(lambda: [r.instance_count for r in w.model.rows] == [3, 2, 1], timeout=30000)
    w.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    qtbot.waitUntil(lambda: _names(w) == ["DOE^JOHN", "ROE^JANE", "SMITH^ANNA"], timeout=30000)
    w.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
    qtbot.waitUntil(lambda: _names(w) == ["SMITH^ANNA", "ROE^JANE", "DOE^JOHN"], timeout=30000)
    w.refresh()  # the arrow still shows the order the rows are in after a refresh
    assert (header.sortIndicatorSection(), header.sortIndicatorOrder()) == (0, Qt.SortOrder.DescendingOrder)


def test_double_click_and_enter_open_a_study(qtbot: QtBot, db: Database) -> None:
    w = WorklistWidget(db)
    qtbot.addWidget(w)
    w.resize(900, 400)
    w.show()
    qtbot.waitExposed(w)
    expected = w.model.rows[1].study_uid
    opened: list[str] = []
    w.studyOpenRequested.connect(opened.append)
    rect = w.table.visualRect(w.model.index(1, 0))
    with qtbot.waitSignal(w.studyOpenRequested, timeout=2000) as blocker:
        # A real double-click is press, release, then the double-click event on the same cell.
        qtbot.mouseClick(w.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(w.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert blocker.args == [expected]
    qtbot.wait(50)
    assert opened == [expected]  # once per double-click, not twice
    w.table.setCurrentIndex(w.model.index(2, 0))
    w.table.setFocus()
    with qtbot.waitSignal(w.studyOpenRequested, timeout=2000) as blocker:
        qtbot.keyClick(w.table, Qt.Key.Key_Return)
    assert blocker.args == [w.model.rows[2].study_uid]


def test_refresh_picks_up_new_studies_and_keeps_selection(qtbot: QtBot, db: Database, tmp_path: Path) -> None:
    w = WorklistWidget(db)
    qtbot.addWidget(w)
    w.select_study(w.model.rows[1].study_uid)
    selected = w.selected_study_uid()
    write_series(tmp_path / "new", SyntheticStudy("NEW^PATIENT", "N1", date(2025, 1, 1)), 1)
    ImportService(db).run([tmp_path / "new"])
    w.refresh()
    assert _names(w)[0] == "NEW^PATIENT"
    assert w.selected_study_uid() == selected


def test_report_column_shows_who_is_reading_it_elsewhere(qtbot: QtBot, db: Database) -> None:
    from argon2 import PasswordHasher, Type

    from app.reports.claims import ClaimService
    from app.reports.service import ReportService
    from app.reports.users import UserService

    users = UserService(db, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID))
    users.add_user("jlee", "correct horse 1", "radiologist", display_name="Dr Lee")
    lee = users.authenticate("jlee", "correct horse 1")
    uid = next(r.study_uid for r in WorklistWidget(db).model.rows if r.patient_name == "ROE^JANE")
    ReportService(db, users).open_or_create(uid, lee)
    claim = ClaimService(db, workstation="reading-room-3").claim(uid, lee)  # another workstation
    w = WorklistWidget(db)
    qtbot.addWidget(w)
    row = _names(w).index("ROE^JANE")
    report_col = [c.title for c in COLUMNS].index("Report")
    assert w.model.data(w.model.index(row, report_col)).endswith("being read by Dr Lee (jlee)")
    assert "on reading-room-3" in w.model.data(w.model.index(row, 0), Qt.ItemDataRole.ToolTipRole)
    other = _names(w).index("DOE^JOHN")
    assert "being read" not in w.model.data(w.model.index(other, report_col))
    ClaimService(db).release(claim)
    w.refresh()
    assert "being read" not in w.model.data(w.model.index(row, report_col))


def test_date_presets_context_menu_and_live_refresh(qtbot: QtBot, db: Database, tmp_path: Path) -> None:
    from app.settings import Settings

    settings = Settings(tmp_path / "settings.json")
    settings.set("worklist_refresh_s", 0.2)
    w = WorklistWidget(db, settings=settings)
    qtbot.addWidget(w)
    w.resize(900, 400)
    w.show()
    qtbot.waitExposed(w)
    assert not w.date_from.isEnabled()  # no calendar at January 1900: presets first
    assert w.date_from.calendarWidget().yearShown() == QDate.currentDate().year()
    write_series(tmp_path / "today", SyntheticStudy("TODAY^TOM", "T1", date.today()), 1)
    ImportService(db).run([tmp_path / "today"])
    qtbot.waitUntil(lambda: "TODAY^TOM" in _names(w), timeout=30000)  # live: nobody pressed Search
    w.date_preset.setFocus()
    qtbot.keyClick(w.date_preset, Qt.Key.Key_Down)  # "Any date" -> "Today"
    assert w.date_preset.currentText() == "Today"
    qtbot.waitUntil(lambda: _names(w) == ["TODAY^TOM"], timeout=30000)
    w.set_date_preset("Custom range")
    assert w.date_from.isEnabled() and w.date_to.date() == QDate.currentDate()
    w.set_date_preset("Any date")
    qtbot.waitUntil(lambda: len(_names(w)) == 4, timeout=30000)
    requested: list[tuple[str, str]] = []
    w.actionRequested.connect(lambda a, u: requested.append((a, u)))
    rect = w.table.visualRect(w.model.index(1, 0))
    w.table.customContextMenuRequested.emit(rect.center())
    menu = w.context_menu
    assert menu is not None and menu.isVisible()
    labels = [a.text() for a in menu.actions()]
    assert labels[:2] == ["Open", "Open with prior"] and "Delete…" in labels and "Export anonymised…" in labels
    qtbot.keyClick(menu, Qt.Key.Key_Down)
    qtbot.keyClick(menu, Qt.Key.Key_Return)
    assert requested and requested[0][1] == w.model.rows[1].study_uid
