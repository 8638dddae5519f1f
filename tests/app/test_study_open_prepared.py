"""The first study opened after start-up or log-in does not build the report editor on the GUI thread: the
window builds it (and warms the study-open queries) while idle, right after it first shows and after each
log-out; the AI panels get the study's stored drafts with its images, read off the GUI thread."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.db.database import Database
from app.demo_studies import demo_study_uids, ensure_demo_imported
from app.settings import Settings
from viewer.widgets.background import pending_jobs

PASSWORD = "correct horse battery"


def _database(tmp_path, monkeypatch) -> Database:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    return Database.open(f"sqlite:///{tmp_path / 'rs.db'}", store_dir=tmp_path / "store")


def test_first_open_after_log_in_uses_the_editor_built_at_idle_time(qtbot, tmp_path, monkeypatch) -> None:
    from app.main_window import MainWindow
    from app.reports.users import UserService

    database = _database(tmp_path, monkeypatch)
    try:
        ensure_demo_imported(database)
        UserService.from_settings(database).add_user("rad", PASSWORD, "radiologist", display_name="Dr Rad")
        window = MainWindow(database, settings=Settings(tmp_path / "settings.json"))
        qtbot.addWidget(window)
        window.resize(1600, 1000)
        window.show()
        assert window.report_editor is None
        qtbot.waitUntil(lambda: window._spare_editor is not None, timeout=20000)  # built once the loop is idle
        spare = window._spare_editor
        assert not spare.isVisible() and spare.study_uid == ""

        gate = window.lock_screen
        gate.username.setText("rad")
        qtbot.keyClicks(gate.password, PASSWORD)
        qtbot.keyClick(gate.password, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: not gate.checking and not window.locked, timeout=30000)
        assert window._spare_editor is spare  # logging in (no study open) needs no editor yet

        uid = demo_study_uids()[0]
        assert window.open_study(uid)
        assert window.report_editor is spare and window._spare_editor is None
        assert spare.study_uid == uid and window.side_tabs.currentWidget() is spare and spare.isVisible()
        qtbot.waitUntil(lambda: not spare.opening, timeout=20000)
        findings = spare.editors["findings"]
        assert not findings.isReadOnly() and spare.current_template() is not None
        findings.setFocus()
        qtbot.keyClicks(findings, "Typed into the prepared editor.")
        assert spare.save_now()
        assert "Typed into the prepared editor." in spare.version.content.get("findings")
        # the window follows the prepared editor as it follows one built on the spot (wired at idle time)
        assert "Typed into the prepared editor." in window.explain_panel._study[2]
        qtbot.waitUntil(lambda: window.ai_images_ready and window.open_lookups_ready, timeout=30000)
        assert window.ai_panel.study_uid == uid and window.ai_panel.images

        window.set_user(None)  # log out: the next user's editor is prepared while the window is locked
        assert window.locked and window.report_editor is not None and window.report_editor is not spare
        qtbot.waitUntil(lambda: window._spare_editor is not None, timeout=20000)
        qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=30000)
        window.close()
    finally:
        database.dispose()


def test_first_open_reads_no_module_source_on_the_gui_thread(qtbot, tmp_path, monkeypatch) -> None:
    """PySide's import hook reads a module's source (inspect.getsource) the first time the GUI thread imports
    it: ~25 ms of the first open under load when the open path imported modules lazily."""
    import inspect
    import threading

    from app.main_window import MainWindow

    database = _database(tmp_path, monkeypatch)
    try:
        ensure_demo_imported(database)
        window = MainWindow(database, settings=Settings(tmp_path / "settings.json"))
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(window.start_up_work_done, timeout=30000)
        read: list[str] = []
        real = inspect.getsource

        def spy(obj):  # the real function, called through; only who asked is noted
            if threading.current_thread() is threading.main_thread():
                read.append(getattr(obj, "__name__", repr(obj)))
            return real(obj)

        monkeypatch.setattr(inspect, "getsource", spy)
        assert window.open_study(demo_study_uids()[0])
        qtbot.waitUntil(lambda: window.ai_images_ready and window.open_lookups_ready, timeout=30000)
        qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=30000)
        assert read == []
        window.close()
    finally:
        database.dispose()
