"""The reading-room report workflow driven by keys and clicks: templates chosen by the exam, nothing saved
until the radiologist writes, fields and pick-lists, macros, amendments with a reason that carry everything
forward, the version history, dialogs that answer Enter/Escape, and autosave off the GUI thread."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from app.db.models import Instance, Patient, Series, Study
from app.reports.exporting import export_version
from app.reports.service import ReportError
from app.widgets.login_dialog import LoginDialog
from app.widgets.report_editor import ReportEditor
from app.widgets.sign_dialog import SignDialog
from tests.support.reports_testing import PASSWORD, STUDY_UID

MR_STUDY = "1.2.826.0.1.3680043.8.498.2001"
PROV = {"engine": "medim-diffusion", "weights_hash": "c0ffee" * 10, "seed": 11}


def _add_mr_brain(db) -> None:
    with db.session() as s:
        patient = Patient(patient_key="|PAT777", patient_id="PAT777", name="ROE^RICHARD", name_search="ROE RICHARD")
        study = Study(study_uid=MR_STUDY, patient=patient, study_date=dt.date(2026, 11, 21), accession="ACC777",
                      description="MRI BRAIN WITHOUT CONTRAST", modalities="MR")
        series = Series(series_uid=MR_STUDY + ".1", study=study, modality="MR", series_number=1, body_part="BRAIN")
        series.instances.append(Instance(sop_instance_uid=MR_STUDY + ".1.1", sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
                                         instance_number=1, number_of_frames=1, rows=64, columns=64,
                                         file_path="x/mr.dcm"))
        s.add_all([patient, study, series])


def _editor(qtbot, env, user, study=STUDY_UID, autosave_ms=100) -> ReportEditor:
    ed = ReportEditor(env.db, study, lambda: user, service=env.service, autosave_ms=autosave_ms)
    qtbot.addWidget(ed)
    ed.resize(1100, 760)
    ed.show()
    return ed


def _answer_next_modal(key=Qt.Key.Key_Return, text: str = "") -> None:
    """Like a user answering the dialog that is about to open: type `text`, then press `key`."""
    from PySide6.QtTest import QTest

    def answer() -> None:
        w = QApplication.activeModalWidget()
        if w is None:
            QTimer.singleShot(20, answer)
            return
        if text:
            QTest.keyClicks(w.focusWidget() or w, text)
        QTest.keyClick(w.focusWidget() or w, key)

    QTimer.singleShot(20, answer)


def _type_at_end(qtbot, edit, text: str) -> None:
    edit.setFocus()
    edit.moveCursor(edit.textCursor().MoveOperation.End)
    qtbot.keyClicks(edit, text)


def test_template_fits_the_exam_and_nothing_is_saved_until_typed(qtbot, env, radiologist):
    _add_mr_brain(env.db)
    mr = _editor(qtbot, env, radiologist, MR_STUDY)
    assert mr.current_template().exam_type == "mr_brain"
    assert "Brain parenchyma" in mr.editors["findings"].toPlainText()
    assert "chest" not in mr.current_text().lower()
    assert mr.template_combo.currentText().startswith("MRI brain")
    assert env.service.history(MR_STUDY) == []  # opening wrote nothing
    assert not mr.sign_button.isEnabled() and "Nothing written" in mr.sign_button.toolTip()
    mr.close()
    assert env.service.history(MR_STUDY) == []  # nor did closing

    cxr = _editor(qtbot, env, radiologist)
    assert cxr.current_template().exam_type == "chest_xray"
    with qtbot.waitSignal(cxr.autosaved, timeout=30000):
        _type_at_end(qtbot, cxr.editors["indication"], "Cough and fever.")
    saved = env.service.history(STUDY_UID)
    assert len(saved) == 1 and saved[0].content.get("indication") == "Cough and fever."
    assert saved[0].exam_type == "chest_xray"


def test_switching_template_from_the_box_asks_before_replacing_written_text(qtbot, env, radiologist):
    ed = _editor(qtbot, env, radiologist)
    combo = ed.template_combo
    # nothing written yet: switching just shows the other template, still unsaved
    ct = combo.findData("builtin:ct_chest")
    assert ct > 0
    combo.setFocus()
    combo.setCurrentIndex(ct)
    combo.activated.emit(ct)
    assert ed.current_template().exam_type == "ct_chest" and env.service.history(STUDY_UID) == []
    # written text: Escape keeps it, Enter (the default button "Replace text") replaces it; Undo restores it
    with qtbot.waitSignal(ed.autosaved, timeout=30000):
        _type_at_end(qtbot, ed.editors["findings"], " My own words.")
    chest = combo.findData("builtin:chest_xray")
    _answer_next_modal(Qt.Key.Key_Escape)
    combo.setCurrentIndex(chest)
    combo.activated.emit(chest)
    assert "My own words." in ed.editors["findings"].toPlainText()
    assert combo.currentData() == "builtin:ct_chest"
    _answer_next_modal(Qt.Key.Key_Return)
    combo.setCurrentIndex(chest)
    combo.activated.emit(chest)
    assert "My own words." not in ed.editors["findings"].toPlainText()
    assert ed.current_template().exam_type == "chest_xray"
    ed.editors["findings"].setFocus()
    qtbot.keyClick(ed.editors["findings"], Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert "My own words." in ed.editors["findings"].toPlainText()
    assert ed.save_now()
    assert env.service.version(ed.version.id).exam_type == "chest_xray"  # the switch is recorded


def test_fields_are_filled_from_pick_lists_by_keyboard_before_signing(qtbot, env, radiologist):
    ed = _editor(qtbot, env, radiologist)
    findings = ed.editors["findings"]
    findings.setFocus()
    findings.moveCursor(findings.textCursor().MoveOperation.Start)
    qtbot.keyClick(findings, Qt.Key.Key_F6)  # next field: "Lungs: [clear|...]": Escape, then type over it
    assert findings.textCursor().selectedText() == "[clear|...]"
    menu = ed.fields.menu
    assert menu is not None and menu.isVisible() and [a.text() for a in menu.actions()] == ["clear", "Type my own…"]
    qtbot.keyClick(menu, Qt.Key.Key_Escape)
    qtbot.keyClicks(findings, "patchy right basal consolidation")
    qtbot.keyClick(findings, Qt.Key.Key_F6)  # "Pleura: [no effusion or pneumothorax|...]": take the first choice
    qtbot.keyClick(ed.fields.menu, Qt.Key.Key_Return)
    assert "Pleura: no effusion or pneumothorax." in findings.toPlainText()
    assert "Lungs: patchy right basal consolidation." in findings.toPlainText()
    ed.save_now()
    assert not ed.sign_button.isEnabled() and "field" in ed.sign_button.toolTip()
    qtbot.mouseClick(ed.defaults_button, Qt.MouseButton.LeftButton)  # accept the rest explicitly
    assert "[" not in ed.current_text()
    assert "Lungs: patchy right basal consolidation." in ed.editors["findings"].toPlainText()
    assert ed.save_now() and ed.sign_button.isEnabled()


def test_macros_expand_with_ctrl_space(qtbot, env, radiologist):
    ed = _editor(qtbot, env, radiologist)
    imp = ed.editors["impression"]
    imp.setFocus()
    imp.selectAll()
    qtbot.keyClicks(imp, "noeff")
    qtbot.keyClick(imp, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    assert imp.toPlainText() == "No pleural effusion."
    qtbot.keyClicks(imp, " effusion")
    qtbot.keyClick(imp, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    # the macro's first pick-list is offered at once
    assert ed.fields.menu.isVisible()
    qtbot.keyClick(ed.fields.menu, Qt.Key.Key_Down)
    qtbot.keyClick(ed.fields.menu, Qt.Key.Key_Return)
    assert imp.toPlainText().startswith("No pleural effusion. Moderate [left|right|bilateral] pleural effusion.")
    qtbot.keyClicks(imp, " zzz")
    qtbot.keyClick(imp, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    assert "No macro named" in ed.banner.text() and ed.fields.menu.objectName() == "macroChoices"


@pytest.mark.timeout(1800)  # three signatures, each with a signed PDF: slow on a loaded two-core machine
def test_amendment_needs_a_reason_and_carries_addenda_and_ai_disclosure(qtbot, env, radiologist, tmp_path):
    ed = _editor(qtbot, env, radiologist)
    ed.load_ai_draft("Small left pleural effusion.", "Left effusion.", PROV)
    ed.accept_ai()
    ed.fill_defaults()
    assert ed.save_now()
    env.service.sign(ed.version.id, radiologist, PASSWORD)
    ed.reload()
    qtbot.mouseClick(ed.addendum_button, Qt.MouseButton.LeftButton)
    _type_at_end(qtbot, ed.editors["addendum"], "Discussed with Dr Smith.")
    assert ed.save_now()
    env.service.sign(ed.version.id, radiologist, PASSWORD)
    ed.reload()

    with pytest.raises(ReportError, match="reason"):
        env.service.amend(ed.version.id, radiologist, "amendment")
    # Amend: the reason is required (Enter does nothing while it is empty), then Enter starts it
    _answer_next_modal(Qt.Key.Key_Return)
    QTimer.singleShot(400, lambda: ed.amend_dialog.isVisible() and _answer_next_modal(Qt.Key.Key_Escape))
    assert not ed.amend("amendment")
    _answer_next_modal(Qt.Key.Key_Return, text="Side corrected after review")
    assert ed.amend("amendment")
    am = ed.version
    assert am.kind == "amendment" and am.amend_reason == "Side corrected after review"
    assert am.content.get("addendum") == "Discussed with Dr Smith."  # the signed addendum came along
    assert am.ai_generated and not am.needs_ai_review  # and the AI disclosure
    assert "reason: Side corrected" in ed.status_label.text()
    ed.editors["impression"].setPlainText("Right pleural effusion.")
    assert ed.save_now()
    signed = env.service.sign(am.id, radiologist, PASSWORD)
    assert b'"reason":"Side corrected after review"' in signed.signature["canonical"]
    text = export_version(env.service, am.id, "text", tmp_path / "am.txt").read_text()
    assert "Drafted with AI assistance" in text and "Discussed with Dr Smith." in text

    # a second addendum keeps the first one word for word
    ed.reload()
    assert ed.amend("addendum")
    assert "Discussed with Dr Smith." in ed.earlier_addenda.text() and ed.editors["addendum"].toPlainText() == ""
    _type_at_end(qtbot, ed.editors["addendum"], "Called the ward.")
    assert ed.save_now()
    assert ed.version.content.get("addendum") == "Discussed with Dr Smith.\n\nCalled the ward."
    with pytest.raises(Exception, match="word for word"):
        env.service.save_draft(ed.version.id, {**ed.version.content.to_dict(), "addendum": "Called the ward."},
                               radiologist)


@pytest.mark.timeout(1200)
def test_version_history_opens_any_version_read_only_and_compares_two(qtbot, env, radiologist):
    ed = _editor(qtbot, env, radiologist)
    ed.editors["findings"].setPlainText("Heart normal.")
    ed.fill_defaults()
    assert ed.save_now()
    env.service.sign(ed.version.id, radiologist, PASSWORD)
    ed.reload()
    assert ed.amend("amendment", reason="Cardiomegaly missed")
    ed.editors["findings"].setPlainText("Heart enlarged.")
    assert ed.save_now()
    history = ed.history
    ed.tabs.setCurrentWidget(history)
    assert history.count() == 2
    assert "signed" in history.list.item(1).text() and "T" not in history.list.item(1).text().split("signed")[1][:12]
    # readable in the narrow side panel: short lines (version and state first), none wider than the panel
    ed.resize(480, ed.height())  # the side panel's width beside the viewer
    history.show()
    metrics = history.list.fontMetrics()
    first, second = history.list.item(0).text().splitlines(), history.list.item(1).text().splitlines()
    assert first[:2] == ["Version 2 amendment", "DRAFT"] and first[-1] == "reason: Cardiomegaly missed"
    assert second[:2] == ["Version 1", "FINAL"] and second[2].startswith("signed ") and second[3].startswith("by ")
    widths = {line: metrics.horizontalAdvance(line) for line in first[:-1] + second}  # a long reason may wrap
    assert max(widths.values()) < history.list.viewport().width(), (widths, history.list.viewport().width())
    assert "Version 1" in history.list.item(1).toolTip() and "FINAL, signed" in history.list.item(1).toolTip()
    history.list.setFocus()
    history.list.setCurrentRow(1)  # version 1 (newest first)
    qtbot.keyClick(history.list, Qt.Key.Key_Return)
    shown = history.dialog
    assert shown.version.version_no == 1 and "Heart normal." in shown.text.toPlainText()
    assert shown.text.isReadOnly()
    qtbot.keyClick(shown, Qt.Key.Key_Escape)
    history.list.selectAll()
    qtbot.mouseClick(history.compare_button, Qt.MouseButton.LeftButton)
    diff = history.dialog
    assert (diff.older.version_no, diff.newer.version_no) == (1, 2) and diff.changed_sections == 1
    assert "normal" in diff.text.toHtml() and "line-through" in diff.text.toHtml()


@pytest.mark.timeout(1200)
def test_login_and_sign_dialogs_answer_enter_and_escape(qtbot, env, radiologist):
    dlg = LoginDialog(env.users, username="rad")
    qtbot.addWidget(dlg)
    dlg.show()
    assert dlg.password.hasFocus() or dlg.focusWidget() is dlg.password
    qtbot.keyClicks(dlg.password, PASSWORD)
    with qtbot.waitSignal(dlg.accepted, timeout=30000):
        qtbot.keyClick(dlg.password, Qt.Key.Key_Return)  # Enter logs in, never cancels
    assert dlg.session is not None

    ed = _editor(qtbot, env, radiologist)
    ed.fill_defaults()
    assert ed.save_now()
    sign = SignDialog(env.service, ed.version, radiologist, env.service.identity(STUDY_UID), ed)
    qtbot.addWidget(sign)
    sign.show()
    qtbot.keyClicks(sign.password, PASSWORD)
    with qtbot.waitSignal(sign.accepted, timeout=180_000):
        qtbot.keyClick(sign.password, Qt.Key.Key_Return)
    assert sign.signed_version is not None and sign.signed_version.is_signed
    again = LoginDialog(env.users, username="rad")
    qtbot.addWidget(again)
    again.show()
    with qtbot.waitSignal(again.rejected, timeout=30000):
        qtbot.keyClick(again.password, Qt.Key.Key_Escape)


@pytest.mark.sqlite_only  # the lock is an SQLite writer's BEGIN EXCLUSIVE on the database file
def test_autosave_runs_off_the_gui_thread_and_retries_when_the_database_is_locked(qtbot, env, radiologist, tmp_path):
    ed = _editor(qtbot, env, radiologist)
    with qtbot.waitSignal(ed.autosaved, timeout=30000):
        _type_at_end(qtbot, ed.editors["findings"], " First line.")
    db_path = str(env.db.engine.url.database)
    locker = sqlite3.connect(db_path, timeout=1, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    release = threading.Event()
    try:
        failures: list[str] = []
        ed.saveFailed.connect(failures.append)
        _type_at_end(qtbot, ed.editors["findings"], " Typed while locked.")
        qtbot.waitUntil(lambda: bool(ed._saver.busy or failures), timeout=30000)
        # the save waits on the lock in the background: the editor still takes keys
        _type_at_end(qtbot, ed.editors["findings"], " More.")
        assert ed.editors["findings"].toPlainText().endswith("Typed while locked. More.")
        qtbot.waitUntil(lambda: bool(failures), timeout=120_000)
        assert ed.save_problem.isVisible() and "Retrying in" in ed.save_problem_label.text()
        assert "nothing is lost" in failures[0] and "locked" in failures[0]
    finally:
        locker.rollback()
        locker.close()
        release.set()
    with qtbot.waitSignal(ed.autosaved, timeout=60_000):
        qtbot.mouseClick(ed.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not ed.save_problem.isVisible(), timeout=30000)
    assert env.service.version(ed.version.id).content.get("findings").endswith("Typed while locked. More.")


@pytest.mark.timeout(1200)
def test_no_finding_present_is_shown_as_good_news_and_a_present_finding_as_alarm(qtbot, env, radiologist):
    """The findings list colours what the text states: "No Finding — present" is green (it was red, the
    alarm colour), a finding that is present is red, one stated absent green."""
    from PySide6.QtGui import QColor

    from app.widgets.report_editor import FINDING_VALUE_COLOUR

    ed = _editor(qtbot, env, radiologist)

    def colours() -> dict[str, str]:
        items = [ed.findings_list.item(i) for i in range(ed.findings_list.count())]
        return {i.text(): i.foreground().color().name() for i in items}

    for key in ("findings", "impression"):
        ed.editors[key].clear()
    ed.editors["findings"].setFocus()
    qtbot.keyClicks(ed.editors["findings"], "Heart size is normal. The lungs are clear.")
    qtbot.waitUntil(lambda: "No Finding — present" in colours(), timeout=10000)
    green, red = QColor(FINDING_VALUE_COLOUR[0]).name(), QColor(FINDING_VALUE_COLOUR[1]).name()
    assert colours()["No Finding — present"] == green
    ed.editors["findings"].selectAll()
    qtbot.keyClicks(ed.editors["findings"], "Mild cardiomegaly. No pleural effusion.")
    qtbot.waitUntil(lambda: "Cardiomegaly — present" in colours(), timeout=10000)
    assert colours()["Cardiomegaly — present"] == red and "No Finding — present" not in colours()
    assert colours()["Pleural Effusion — absent"] == green
    qtbot.waitUntil(lambda: ed.is_saved and not ed._saver.busy, timeout=20000)  # the autosave finished
