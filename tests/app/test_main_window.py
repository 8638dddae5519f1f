"""The main window drives real parts: demo import, worklist, viewer, the `gui` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.db.database import Database
from app.demo_studies import demo_study_uids, ensure_demo_imported


@pytest.fixture()
def database(tmp_path, monkeypatch) -> Database:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    return Database.open(f"sqlite:///{tmp_path / 'rs.db'}", store_dir=tmp_path / "store")


def test_demo_import_is_idempotent(database: Database) -> None:
    first = ensure_demo_imported(database)
    assert first is not None and first.imported > 0 and first.failed == 0, first.summary()
    assert ensure_demo_imported(database) is None  # all demo studies present: nothing to do


def test_open_demo_study_shows_it_in_the_viewer(qtbot, database: Database) -> None:
    from app.main_window import MainWindow

    ensure_demo_imported(database)
    window = MainWindow(database)
    qtbot.addWidget(window)
    window.show()
    window.worklist.refresh()
    uids = demo_study_uids()
    assert window.open_study(uids[0])
    assert window.tabs.currentWidget() is window.workspace
    image = window.workspace.current_image()
    assert image is not None and image.study_uid == uids[0]
    assert "DEMO" in window.windowTitle()


def test_unknown_study_gives_a_message_not_a_crash(qtbot, database: Database, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    from app.main_window import MainWindow

    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    window = MainWindow(database)
    qtbot.addWidget(window)
    assert not window.open_study("1.2.3.4.5.999")
    assert shown and "not in the database" in shown[0]
    assert window.study is None


def test_gui_command_opens_demo_and_saves_a_screenshot(tmp_path: Path) -> None:
    """The console entry point end to end, as a user starts it (offscreen platform)."""
    shot = tmp_path / "main.png"
    env = {"RADSTATION_HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"}
    res = subprocess.run(
        [sys.executable, "-m", "app", "gui", "--screenshot", str(shot), "--screenshot-delay", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 0, res.stderr
    assert shot.exists() and shot.stat().st_size > 20_000  # a real picture, not an empty window


def test_report_editor_follows_the_logged_in_user(qtbot, database: Database) -> None:
    from app.main_window import MainWindow
    from app.reports.users import UserService

    ensure_demo_imported(database)
    window = MainWindow(database)
    qtbot.addWidget(window)
    window.open_study(demo_study_uids()[0])
    assert window.report_editor is not None
    assert window.report_editor.editors["findings"].isReadOnly()  # nobody logged in: nothing to lose
    users = UserService.from_settings(database)
    users.add_user("drwho", "correct horse battery", "radiologist", display_name="Dr Who")
    window.set_user(users.authenticate("drwho", "correct horse battery"))
    editor = window.report_editor
    assert not editor.editors["findings"].isReadOnly()
    editor.editors["findings"].setPlainText("Heart size normal. No effusion.")
    editor.save_now()
    window.open_study(demo_study_uids()[1])  # switching studies keeps what was typed
    window.open_study(demo_study_uids()[0])
    assert "No effusion" in window.report_editor.editors["findings"].toPlainText()
