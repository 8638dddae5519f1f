"""The reading room around the viewer, driven as a radiologist would (keys and clicks): the log-in gate and
idle lock, activity anywhere in the app, actions that say why they are disabled, the report panel and
reading mode, saved screen layouts, start-up, worklist row actions, Settings, shortcuts, help and the
template editor."""

from __future__ import annotations

import datetime as dt
import json
import threading
from datetime import date
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from app.db.database import Database
from app.demo_studies import demo_study_uids, ensure_demo_imported
from app.settings import Settings

PASSWORD = "correct horse battery"


@pytest.fixture()
def database(tmp_path, monkeypatch) -> Database:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    db = Database.open(f"sqlite:///{tmp_path / 'rs.db'}", store_dir=tmp_path / "store")
    yield db
    db.dispose()


def _window(qtbot, database, tmp_path, **settings):
    from app.main_window import MainWindow

    st = Settings(tmp_path / "settings.json")
    for k, v in settings.items():
        st.set(k, v)
    window = MainWindow(database, settings=st)
    qtbot.addWidget(window)
    window.resize(1600, 1000)
    window.show()
    return window


def _add_user(database, name="rad", role="radiologist"):
    from app.reports.users import UserService

    users = UserService.from_settings(database)
    users.add_user(name, PASSWORD, role, display_name=f"Dr {name.title()}")
    return users


def _log_in_at_gate(qtbot, window, name="rad"):
    gate = window.lock_screen
    if not gate.username.isReadOnly():
        gate.username.setText(name)
    gate.password.setFocus()
    qtbot.keyClicks(gate.password, PASSWORD)
    qtbot.keyClick(gate.password, Qt.Key.Key_Return)
    assert gate.checking  # the password is checked off the GUI thread
    qtbot.waitUntil(lambda: not gate.checking, timeout=30000)


def test_gate_hides_patient_data_until_log_in_then_idle_lock_keeps_the_report(qtbot, database, tmp_path):
    ensure_demo_imported(database)
    _add_user(database)
    window = _window(qtbot, database, tmp_path)
    assert window.locked and window.pages.currentWidget() is window.lock_screen
    assert not window.worklist.isVisible() and not window.menuBar().isEnabled()
    assert "locked" in window.windowTitle().lower()
    window.lock_screen.username.setText("rad")
    qtbot.keyClicks(window.lock_screen.password, "wrong password")
    qtbot.keyClick(window.lock_screen.password, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.lock_screen.checking, timeout=30000)
    assert window.locked and "wrong" in window.lock_screen.error.text()
    _log_in_at_gate(qtbot, window)
    assert not window.locked and window.auth.username == "rad" and window.worklist.isVisible()

    assert window.open_study(demo_study_uids()[0])
    # the editor was built while the window was idle: the report is read off the GUI thread, as on a switch
    qtbot.waitUntil(lambda: not window.report_editor.opening, timeout=20000)
    findings = window.report_editor.editors["findings"]
    findings.setFocus()
    findings.moveCursor(findings.textCursor().MoveOperation.End)
    qtbot.keyClicks(findings, " Typed before the lock.")
    # reading images is activity: a key press in the viewer refreshes the session
    window.auth.last_activity -= dt.timedelta(minutes=20)
    before = window.auth.last_activity
    window.activity._last_touch = 0
    qtbot.keyClick(window.workspace.active_viewport(), Qt.Key.Key_Down)
    assert window.auth.last_activity > before
    # idle past the timeout: the screen locks, patient data hidden, the user name is pre-filled
    window.auth.last_activity -= dt.timedelta(hours=1)
    window.activity.check()
    assert window.locked and not window.side_dock.isVisible() and not window.workspace.isVisible()
    assert window.lock_screen.username.text() == "rad" and window.lock_screen.username.isReadOnly()
    assert window.lock_screen.password.hasFocus() or window.lock_screen.focusWidget() is window.lock_screen.password
    _log_in_at_gate(qtbot, window)
    assert not window.locked and window.side_dock.isVisible()
    assert findings.toPlainText().endswith("Typed before the lock.") and not findings.isReadOnly()
    assert window.report_editor.save_now()
    assert window.report_editor.version.content.get("findings").endswith("Typed before the lock.")


def test_first_run_offers_the_first_account(qtbot, database, tmp_path):
    window = _window(qtbot, database, tmp_path)
    gate = window.lock_screen
    assert window.locked and gate.create_button.isVisible() and not gate.password.isEnabled()


def test_kiosk_mode_reads_without_log_in_and_disables_what_needs_a_user(qtbot, database, tmp_path):
    ensure_demo_imported(database)
    window = _window(qtbot, database, tmp_path, kiosk_mode=True)
    assert not window.locked and window.worklist.isVisible()
    assert window.open_study(demo_study_uids()[0])
    ed = window.report_editor
    for button in (ed.sign_button, ed.amend_button, ed.addendum_button, ed.send_button, ed.accept_button):
        assert not button.isEnabled() and "Log in" in button.toolTip()
    draft = window.actions_by_name["draft"]
    assert not draft.isEnabled() and "Log in" in draft.toolTip()
    assert not window.actions_by_name["logout"].isEnabled()


def test_report_panel_reading_mode_layouts_and_stable_width(qtbot, database, tmp_path):
    ensure_demo_imported(database)
    users = _add_user(database)
    window = _window(qtbot, database, tmp_path)
    window.set_user(users.authenticate("rad", PASSWORD))
    window.open_study(demo_study_uids()[0])
    qtbot.waitUntil(lambda: window.side_dock.isVisible(), timeout=30000)
    assert window.side_dock.width() <= window.width() * 0.4  # the viewer keeps most of the screen
    toggle = window.actions_by_name["toggle_report"]
    assert toggle.isEnabled() and toggle.shortcut().toString() == "F4"
    toggle.trigger()
    assert not window.side_dock.isVisible()
    toggle.trigger()
    assert window.side_dock.isVisible()
    window.actions_by_name["reading_mode"].trigger()
    assert not window.side_dock.isVisible() and not window.statusBar().isVisible()
    window.actions_by_name["reading_mode"].trigger()
    assert window.side_dock.isVisible()
    width = window.width()
    for _ in range(3):  # a new report editor (new study, new user) never widens the window
        window.open_study(demo_study_uids()[1])
        window.open_study(demo_study_uids()[0])
        qtbot.wait(50)
    assert window.width() == width
    window.workspace.set_layout("2x2")
    window.save_layout_as("two by two")
    window.workspace.set_layout("1x1")
    window.side_dock.hide()
    assert window.restore_layout("two by two")
    assert window.workspace.layout_view.grid() == (2, 2) and window.side_dock.isVisible()
    assert "two by two" in json.loads((tmp_path / "settings.json").read_text())["screen_layouts"]


def test_start_up_shows_the_worklist_or_the_last_study(qtbot, database, tmp_path):
    ensure_demo_imported(database)
    window = _window(qtbot, database, tmp_path, kiosk_mode=True)
    window.start_up()
    assert window.tabs.currentWidget() is window.worklist and window.study is None
    qtbot.waitUntil(lambda: window.worklist.model.rowCount() >= 1, timeout=30000)  # no Search press needed
    window.open_study(demo_study_uids()[1])
    window.close()
    again = _window(qtbot, database, tmp_path, kiosk_mode=True, startup_view="last_study")
    again.start_up()
    assert again.study is not None and again.study.study_uid == demo_study_uids()[1]


def _two_studies_of_one_patient(database, tmp_path) -> list[str]:
    from app.importer import ImportService
    from tests.support.synthetic_dicom import SyntheticStudy, write_series

    for i, day in enumerate((date(2024, 3, 1), date(2025, 3, 1))):
        write_series(tmp_path / "src" / str(i), SyntheticStudy("DOE^JOHN", "P100", day, f"ACC-{i}", "CT CHEST", "CT"),
                     3)
    ImportService(database).run([tmp_path / "src"])
    with database.session() as s:
        from sqlalchemy import select

        from app.db.models import Study

        return [u for (u,) in s.execute(select(Study.study_uid).order_by(Study.study_date))]


def _settled(window) -> bool:
    return window.open_lookups_ready and window.ai_images_ready and window.workspace.study_objects_ready()


def test_hanging_protocol_puts_the_prior_beside_the_study_and_a_late_one_is_dropped(qtbot, database, tmp_path):
    """The prior is looked up off the GUI thread: the study shows at once, the prior follows beside it. A
    lookup that comes back after another study was opened is dropped, never laid over that study."""
    old, new = _two_studies_of_one_patient(database, tmp_path)
    window = _window(qtbot, database, tmp_path, kiosk_mode=True)
    assert window.open_study(new)
    assert window.workspace.viewports()[0].current_image().study_uid == new  # the first image, before the prior
    qtbot.waitUntil(lambda: window.workspace.layout_view.grid() == (1, 2), timeout=20000)
    right = window.workspace.viewports()[1].current_image()
    assert right is not None and right.study_uid == old
    assert "CT/MR with prior" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: _settled(window), timeout=20000)

    hung: list[tuple[str, list]] = []  # every protocol laid out: (the study on screen, its priors)
    apply = window.workspace.apply_hanging
    window.workspace.apply_hanging = lambda priors, *a: (
        hung.append((window.workspace.study().study_uid, [p.study_uid for p in priors])), apply(priors, *a))[1]
    window.workspace.set_layout("1x1")
    assert window.open_study(new)  # its lookup (which would hang 1x2) is still on its way...
    assert window.open_study(old)  # ...when the radiologist opens the older study, which has no prior
    qtbot.waitUntil(lambda: _settled(window), timeout=20000)
    qtbot.wait(100)
    assert hung == [(old, [])]  # the new study's prior never laid over the old study
    assert window.workspace.layout_view.grid() == (1, 1)
    assert window.study.study_uid == old and window.workspace.current_image().study_uid == old

    assert window.open_study(new)
    window._hanging_for = None  # as open_with_prior does: hung by hand, the automatic protocol is dropped
    qtbot.waitUntil(lambda: _settled(window), timeout=20000)
    qtbot.wait(100)
    assert hung == [(old, [])] and window.workspace.layout_view.grid() == (1, 1)


def test_a_late_hanging_protocol_keeps_where_the_reader_scrolled(qtbot, database, tmp_path):
    """The protocol arrives after its off-thread prior lookup; a reader who began scrolling the current study
    meanwhile stays on their image (the protocol puts the prior beside it, it does not reload the series)."""
    old, new = _two_studies_of_one_patient(database, tmp_path)
    window = _window(qtbot, database, tmp_path, kiosk_mode=True)
    held = threading.Event()
    from app import study_actions

    lookup = study_actions.hanging_inputs

    def slow_lookup(*args):  # the real lookup, answered only once the reader has scrolled
        held.wait(20)
        return lookup(*args)

    study_actions.hanging_inputs = slow_lookup
    try:
        assert window.open_study(new)
        vp = window.workspace.viewports()[0]
        qtbot.keyClick(vp, Qt.Key.Key_Down)
        qtbot.keyClick(vp, Qt.Key.Key_Down)
        assert vp.state.slice_index == 2
        held.set()
        qtbot.waitUntil(lambda: window.workspace.layout_view.grid() == (1, 2), timeout=20000)
    finally:
        study_actions.hanging_inputs = lookup
    assert window.workspace.viewports()[0] is vp and vp.state.slice_index == 2
    assert window.workspace.viewports()[1].current_image().study_uid == old
    qtbot.waitUntil(lambda: _settled(window), timeout=20000)


def test_worklist_menu_opens_with_prior_exports_anonymised_and_deletes_after_confirming(
        qtbot, database, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    old, new = _two_studies_of_one_patient(database, tmp_path)
    window = _window(qtbot, database, tmp_path, kiosk_mode=True)
    window.worklist.refresh()
    window._worklist_action("open_with_prior", new)
    grid = window.workspace.layout_view.grid()
    assert window.study.study_uid == new and grid == (1, 2)
    right = window.workspace.viewports()[1].current_image()
    assert right is not None and right.study_uid == old  # the prior beside the current study
    qtbot.waitUntil(lambda: _settled(window), timeout=20000)

    out = tmp_path / "export"
    out.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    window._worklist_action("export_anonymised", old)
    qtbot.waitUntil(lambda: "Exported" in window.statusBar().currentMessage(), timeout=60000)
    files = list(out.rglob("*.dcm"))
    import pydicom

    ds = pydicom.dcmread(files[0])
    assert ds.PatientName == "ANONYMOUS" and ds.PatientIdentityRemoved == "YES" and "PatientBirthDate" not in ds
    assert ds.StudyInstanceUID != old

    window.open_study(new)
    def press(key):
        def go():
            box = QApplication.activeModalWidget()
            if box is None:
                QTimer.singleShot(20, go)
                return
            from PySide6.QtTest import QTest

            QTest.keyClick(box, key)
        QTimer.singleShot(20, go)

    press(Qt.Key.Key_Return)  # Enter = the default button = Cancel: nothing deleted
    assert not window.delete_study(old)
    window.worklist.refresh()
    assert old in [r.study_uid for r in window.worklist.model.rows]
    assert window.delete_study(old, confirm=True)
    qtbot.waitUntil(lambda: old not in [r.study_uid for r in window.worklist.model.rows], timeout=30000)


def test_settings_dialog_validates_before_saving(qtbot, database, tmp_path):
    from app.settings_schema import SPECS

    window = _window(qtbot, database, tmp_path, kiosk_mode=True)
    from app.widgets.settings_dialog import SettingsDialog

    dialog = SettingsDialog(window.settings, window)
    qtbot.addWidget(dialog)
    dialog.show()
    json_box = dialog.editors["engine_options"]
    json_box.setPlainText("{not json")
    dialog.editors["engine_device"].setText("gpu please")
    assert not dialog.save()
    assert "not valid JSON" in dialog.problems.text() and "device must be" in dialog.problems.text()
    json_box.setPlainText('{"max_new_tokens": 64}')
    dialog.editors["engine_device"].setText("cpu")
    dialog.editors["session_timeout_minutes"].setValue(12)
    qtbot.keyClick(dialog.editors["engine_device"], Qt.Key.Key_Return)  # Enter = Save
    stored = json.loads((tmp_path / "settings.json").read_text())
    assert stored["engine_options"] == {"max_new_tokens": 64} and stored["session_timeout_minutes"] == 12
    assert "Restart RadStation" in dialog.restart_note()
    # every key the application reads has a place in the dialog
    import re

    read = set()
    for path in (Path(__file__).resolve().parents[2] / "app").rglob("*.py"):
        read |= set(re.findall(r'settings\.get\("([a-z_]+)"', path.read_text()))
        read |= set(re.findall(r'\bst\.get\("([a-z_]+)"', path.read_text()))
    assert read <= {s.key for s in SPECS}, read - {s.key for s in SPECS}


def test_shortcut_sheet_remaps_a_key_and_refuses_a_clash(qtbot, database, tmp_path):
    from app.widgets.shortcuts import ShortcutsDialog

    window = _window(qtbot, database, tmp_path, kiosk_mode=True)
    dialog = ShortcutsDialog(window.actions_by_name, window.settings, window)
    qtbot.addWidget(dialog)
    labels = [dialog.table.item(r, 1).text() for r in range(dialog.table.rowCount())]
    assert "Report and AI panel" in labels and "Invert" in labels and any("field" in x for x in labels)
    assert not dialog.assign("menu:toggle_report", "F3")  # the Viewer tab's key
    assert "already used" in dialog.message.text()
    assert dialog.assign("menu:toggle_report", "F9")
    dialog.save()
    assert window.actions_by_name["toggle_report"].shortcut().toString() == "F9"
    assert json.loads((tmp_path / "settings.json").read_text())["key_bindings"] == {"menu:toggle_report": "F9"}


def test_help_has_the_guide_the_shortcuts_and_the_version(qtbot, database, tmp_path):
    from app.widgets.help_dialog import HelpDialog, version

    window = _window(qtbot, database, tmp_path, kiosk_mode=True)
    dialog = HelpDialog(window.actions_by_name, window)
    qtbot.addWidget(dialog)
    assert "Log in" in dialog.guide.toPlainText() and "F6" in dialog.guide.toPlainText()
    assert "F4" in dialog.keys.toPlainText() and "Report and AI panel" in dialog.keys.toPlainText()
    assert version() in dialog.about.toPlainText() and "Build:" in dialog.about.toPlainText()


def test_personal_template_from_the_editor_is_chosen_for_the_exam(qtbot, database, tmp_path):
    from app.widgets.template_editor import TemplateEditorDialog

    ensure_demo_imported(database)
    users = _add_user(database)
    window = _window(qtbot, database, tmp_path)
    window.set_user(users.authenticate("rad", PASSWORD))
    dialog = TemplateEditorDialog(window.auth, window)
    qtbot.addWidget(dialog)
    row = next(r for r in range(dialog.template_list.count())
               if dialog.template_list.item(r).text().startswith("Chest radiograph"))
    dialog.template_list.setCurrentRow(row)
    assert dialog.id_edit.text() == "chest_xray"
    dialog.title_edit.setText("My chest")
    dialog.section_edits["findings"].setPlainText("Heart: [normal|enlarged]. Lungs: [clear|...].")
    assert dialog.save_template("site") is None  # a radiologist is not an administrator
    saved = dialog.save_template("personal")
    assert saved is not None and saved.scope == "personal"
    dialog.id_edit.setText("Bad Id!")
    assert dialog.save_template("personal") is None and "id" in dialog.message.text().lower()
    dialog.tabs.setCurrentIndex(1)
    dialog.add_macro_row("mynorm", "Normal study.", "")
    assert dialog.save_macros()
    window.open_study(demo_study_uids()[0])
    ed = window.report_editor
    assert ed.current_template().title == "My chest" and ed.current_template().scope == "personal"
    imp = ed.editors["impression"]
    imp.setFocus()
    imp.selectAll()
    qtbot.keyClicks(imp, "mynorm")
    qtbot.keyClick(imp, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    assert imp.toPlainText() == "Normal study."
