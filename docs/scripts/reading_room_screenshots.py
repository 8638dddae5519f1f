"""Regenerate the reading-room screenshots in docs/screenshots (offscreen Qt, temporary data dir).

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/scripts/reading_room_screenshots.py

Log-in gate, worklist with date presets, a chest radiograph with its template and fields, a current + prior
hanging with the measurement list, the version comparison, Settings, keyboard shortcuts, the template
editor and help. No AI inference (see main_window_screenshots.py for the drafted report).
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # screenshot_session beside this file

from screenshot_session import READER, demo_database, shot, start, wait  # noqa: E402


def main() -> int:
    home = start("rs-room-")
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.demo_studies import demo_study_uids
    from app.importer import ImportService
    from app.main_window import MainWindow
    from app.reports.keys import create_self_signed, default_p12_path
    from tests.support.synthetic_dicom import SyntheticStudy, write_series
    from viewer.measure.shapes import Distance

    app = QApplication(sys.argv[:1])
    db = demo_database()
    for i, day in enumerate((date(2025, 3, 1), date(2026, 3, 1))):
        write_series(home / "src" / str(i), SyntheticStudy("DOE^JOHN", "P100", day, f"ACC-{i}", "CT CHEST", "CT"), 3)
    ImportService(db).run([home / "src"])
    user, password, name = READER
    create_self_signed(name, password, default_p12_path(user))  # registered at first use

    window = MainWindow(db)
    window.resize(1700, 1000)
    window.show()
    window.lock_screen.show_login("demo")
    shot(window, "lock_screen.png")
    QTest.keyClicks(window.lock_screen.password, "demo-password-1")
    QTest.keyClick(window.lock_screen.password, Qt.Key.Key_Return)
    while window.locked:  # the password is checked on a worker thread
        wait(100)

    window.show_worklist()
    window.worklist.refresh()
    shot(window, "main_worklist.png")

    window.open_study(demo_study_uids()[1])
    while window.report_editor.opening:  # the report is read off the GUI thread
        wait(50)
    ed = window.report_editor
    ed.editors["indication"].setPlainText("Shortness of breath.")
    findings = ed.editors["findings"]
    findings.setFocus()
    findings.moveCursor(findings.textCursor().MoveOperation.Start)
    ed.fields.next_field()
    wait(300)
    if ed.fields.menu is not None:
        ed.fields.menu.close()
    shot(window, "report_template_fields.png")

    uids = [r.study_uid for r in window.worklist.model.rows if r.patient_name == "DOE^JOHN"]
    newest = max(uids, key=lambda u: next(r.study_date for r in window.worklist.model.rows if r.study_uid == u))
    window.open_with_prior(newest)
    vp = window.workspace.viewports()[0]
    vp.add_measurement(Distance(p0=(20, 30), p1=(60, 30), label="nodule"))
    vp.add_measurement(Distance(p0=(22, 34), p1=(58, 40)))
    window.workspace.toggle_measurements(True)
    shot(window, "viewer_prior_hanging.png")

    window.open_study(demo_study_uids()[0])
    while window.report_editor.opening:
        wait(50)
    ed = window.report_editor
    ed.editors["findings"].setPlainText("Heart size normal. Lungs clear.")
    ed.fill_defaults()
    ed.save_now()
    ed.service.sign(ed.version.id, window.auth, "demo-password-1")
    ed.reload()
    ed.amend("amendment", reason="Missed small left effusion")
    ed.editors["findings"].setPlainText("Heart size normal. Small left pleural effusion.")
    ed.save_now()
    ed.tabs.setCurrentWidget(ed.history)
    ed.history.list.selectAll()
    dialog = ed.history.compare_selected()
    shot(dialog, "report_version_compare.png")
    dialog.close()
    shot(window, "report_amendment.png")

    from app.widgets.help_dialog import HelpDialog
    from app.widgets.settings_dialog import SettingsDialog
    from app.widgets.shortcuts import ShortcutsDialog
    from app.widgets.template_editor import TemplateEditorDialog

    for name, dlg in (("settings_dialog.png", SettingsDialog(window.settings, window)),
                      ("keyboard_shortcuts.png", ShortcutsDialog(window.actions_by_name, window.settings, window)),
                      ("template_editor.png", TemplateEditorDialog(window.auth, window)),
                      ("help_user_guide.png", HelpDialog(window.actions_by_name, window))):
        dlg.show()
        shot(dlg, name)
        dlg.close()
    window.close()
    app.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
