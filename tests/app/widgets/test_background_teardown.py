"""Widgets closed while their background work is in flight (the hazard behind SIGSEGVs in full runs): the
worklist mid-search, the lock screen mid-password-check, the report autosave mid-save. The work ends in the
background and reports nowhere; nothing crashes; saves still run in the order they were started."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import shiboken6
from PySide6.QtWidgets import QWidget

from app.db.database import Database
from app.reports.users import UserService
from app.widgets.lock_screen import LockScreen
from app.widgets.report_autosave import BackgroundSaver
from app.widgets.worklist import WorklistWidget
from viewer.widgets.background import pending_jobs

TIMEOUT = 30000


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    database = Database.open()
    yield database
    database.dispose()


def test_worklist_destroyed_while_its_search_runs(qtbot, db: Database) -> None:
    widget = WorklistWidget(db)
    widget.refresh_soon()
    widget.refresh_soon()
    shiboken6.delete(widget)
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=TIMEOUT)


def test_lock_screen_destroyed_while_the_password_is_checked(qtbot, db: Database) -> None:
    users = UserService(db)
    users.add_user("rad", "correct horse battery", "radiologist")
    screen = LockScreen(users)
    screen.show_login("rad")
    screen.password.setText("correct horse battery")
    screen.try_login()
    assert screen.checking
    shiboken6.delete(screen)
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=TIMEOUT)


def test_autosaves_run_in_order_and_a_closed_editor_drops_the_result(qtbot, tmp_path: Path) -> None:
    owner = QWidget()
    log = tmp_path / "saves.txt"
    gate = threading.Event()

    def persist(text: str) -> int:
        if text == "first":
            gate.wait(5)  # the first save waits on a lock; later ones must not overtake it
        with log.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")
        return len(text)

    saver = BackgroundSaver(persist, owner)
    results: list = []
    saver.finished.connect(results.append)
    for text in ("first", "second", "third"):
        saver.save_async(text)
    qtbot.wait(300)
    assert results == [] and saver.busy  # the first is held up and the others wait behind it
    gate.set()
    qtbot.waitUntil(lambda: len(results) == 3, timeout=TIMEOUT)
    assert [r.seq for r in results] == [1, 2, 3] and log.read_text().split() == ["first", "second", "third"]
    gate.clear()
    saver.save_async("first")  # waits on the gate while the editor closes
    shiboken6.delete(owner)
    gate.set()
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=TIMEOUT)
    assert len(results) == 3 and log.read_text().split()[-1] == "first"
