"""The import dialog runs the import off the GUI thread with progress, Cancel and a report table."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from sqlalchemy import func, select

from app.db.database import Database
from app.db.models import Instance
from app.importer import service as service_module
from app.widgets.import_dialog import ImportController, ImportDialog
from tests.support.synthetic_dicom import SyntheticStudy, write_series


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    database = Database.open()
    yield database
    database.dispose()


def _instances(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Instance)) or 0


def test_import_runs_to_completion_with_progress_and_report(qtbot: QtBot, db: Database, tmp_path: Path) -> None:
    write_series(tmp_path / "in", SyntheticStudy(), 12)
    (tmp_path / "in" / "broken.dcm").write_bytes(b"DICM but not really")
    dialog = ImportDialog(db, [tmp_path / "in"], autostart=False, commit_every=4)
    qtbot.addWidget(dialog)
    progress: list[tuple[int, int]] = []
    dialog.controller.progress.connect(lambda d, t: progress.append((d, t)))
    gui_thread = threading.get_ident()
    with qtbot.waitSignal(dialog.importFinished, timeout=20000) as blocker:
        qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
        assert dialog.controller.is_running() or dialog.controller.report is not None
        assert threading.get_ident() == gui_thread
    report = blocker.args[0]
    assert (report.imported, report.failed, report.cancelled) == (12, 1, False)
    assert progress and progress[-1] == (13, 13)
    assert dialog.progress_bar.value() == dialog.progress_bar.maximum() == 13
    assert "12 imported" in dialog.status_label.text()
    rows = dialog.report_rows()
    assert len(rows) == 1 and rows[0][0] == "Not imported" and rows[0][1].endswith("broken.dcm")
    assert "not a DICOM file" in rows[0][2]
    assert _instances(db) == 12
    assert dialog.start_button.isEnabled() and not dialog.cancel_button.isEnabled()


def test_autostart_and_duplicates_toggle(qtbot: QtBot, db: Database, tmp_path: Path) -> None:
    write_series(tmp_path / "in", SyntheticStudy(), 3)
    first = ImportDialog(db, [tmp_path / "in"])
    qtbot.addWidget(first)
    with qtbot.waitSignal(first.importFinished, timeout=20000):
        pass  # started by itself on the next event-loop turn
    second = ImportDialog(db, [tmp_path / "in"])
    qtbot.addWidget(second)
    with qtbot.waitSignal(second.importFinished, timeout=20000) as blocker:
        pass
    assert blocker.args[0].duplicates == 3
    assert second.report_rows() == []
    second.show_duplicates.setChecked(True)
    assert [r[0] for r in second.report_rows()] == ["Already present"] * 3


def test_cancel_button_stops_the_import(
    qtbot: QtBot, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_series(tmp_path / "in", SyntheticStudy(), 40)
    dialog = ImportDialog(db, [tmp_path / "in"], autostart=False, commit_every=5)
    qtbot.addWidget(dialog)
    reading, pressed = threading.Event(), threading.Event()
    real_probe = service_module.probe_file
    calls: list[Path] = []

    def probe_held_at_third_file(path):  # the worker waits there until the user's click has landed
        calls.append(path)
        if len(calls) == 3:
            reading.set()
            pressed.wait(10)
        return real_probe(path)

    monkeypatch.setattr(service_module, "probe_file", probe_held_at_third_file)
    dialog.start()
    qtbot.waitUntil(reading.is_set, timeout=10000)
    with qtbot.waitSignal(dialog.importFinished, timeout=20000) as blocker:
        qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
        pressed.set()
    report = blocker.args[0]
    assert report.cancelled and report.imported < 40
    assert _instances(db) == report.imported
    assert "cancelled" in dialog.status_label.text()


def test_controller_reports_a_failed_run(qtbot: QtBot, db: Database, tmp_path: Path) -> None:
    controller = ImportController(db)
    db.store_dir.parent.mkdir(parents=True, exist_ok=True)
    (db.store_dir.parent / "import-work").write_text("a file where the work folder should be")
    with qtbot.waitSignal(controller.failed, timeout=20000) as blocker:
        controller.start([tmp_path])
    assert blocker.args[0]
    controller.wait()
