"""ReportEditor, SignDialog, LoginDialog and OutboxWidget offscreen (pytest-qt)."""

from __future__ import annotations

import pytest

from app.reports.models import ImmutableVersionError
from app.reports.outbox import Outbox
from app.widgets.login_dialog import LoginDialog
from app.widgets.outbox import OutboxWidget
from app.widgets.report_editor import ReportEditor
from app.widgets.sign_dialog import SignDialog
from tests.support.reports_testing import PASSWORD, STUDY_UID

PROV = {"engine": "medim-diffusion", "weights_hash": "c0ffee" * 10, "seed": 11}


def _editor(qtbot, env, user, autosave_ms=100):
    ed = ReportEditor(env.db, STUDY_UID, lambda: user, service=env.service, autosave_ms=autosave_ms)
    qtbot.addWidget(ed)
    ed.resize(1100, 700)
    ed.show()
    return ed


def _written(qtbot, ed, text=" Typed by hand."):
    """An editor whose report exists: the radiologist typed and accepted the template defaults."""
    findings = ed.editors["findings"]
    findings.setFocus()
    findings.moveCursor(findings.textCursor().MoveOperation.End)
    qtbot.keyClicks(findings, text)
    ed.fill_defaults()
    assert ed.save_now() and ed.version is not None
    return ed


def test_autosave_within_interval_and_recovery_banner(qtbot, env, radiologist):
    ed = _editor(qtbot, env, radiologist)
    assert ed.version is None and env.service.history(STUDY_UID) == []  # nothing saved by opening
    findings = ed.editors["findings"]
    findings.setFocus()
    findings.moveCursor(findings.textCursor().MoveOperation.End)
    with qtbot.waitSignal(ed.autosaved, timeout=30000):
        qtbot.keyClicks(findings, " Typed by hand.")
    assert env.service.version(ed.version.id).content.get("findings").endswith("Typed by hand.")
    ed.close()
    again = _editor(qtbot, env, radiologist)
    assert again.recovery_banner.isVisible() and "Recovered draft" in again.recovery_banner.text()
    assert again.editors["findings"].toPlainText().endswith("Typed by hand.")


def test_ai_draft_marked_until_edited_then_diff_and_findings_sync(qtbot, env, radiologist):
    ed = _editor(qtbot, env, radiologist)
    ed.load_ai_draft("Small left pleural effusion. No pneumothorax.", "Left effusion.", PROV,
                     [{"token": "Small", "score": 0.9}])
    assert ed.version.needs_ai_review and "AI DRAFT" in ed.banner.text()
    assert ed.editors["findings"].extraSelections()  # uncertain token underlined
    assert not ed.sign_button.isEnabled()  # the AI draft must be reviewed first
    found = ed.structured_findings()
    assert found.get("Pleural Effusion") == 1 and found.get("Pneumothorax") == 0
    # undo brings back the template text the AI draft replaced
    ed.editors["findings"].undo()
    assert "Lungs: [clear" in ed.editors["findings"].toPlainText()
    ed.editors["findings"].redo()
    edit = ed.editors["findings"]
    edit.setFocus()
    edit.moveCursor(edit.textCursor().MoveOperation.End)
    with qtbot.waitSignal(ed.autosaved, timeout=30000):
        qtbot.keyClicks(edit, " Possible cardiomegaly.")
    assert not ed.version.needs_ai_review and ed.version.human_edited
    qtbot.waitUntil(lambda: ed.structured_findings().get("Cardiomegaly") == -1, timeout=2000)
    assert "cardiomegaly" in ed.diff_view.toPlainText().lower() and "1 words added" not in ed.diff_view.toPlainText()
    assert "Possible cardiomegaly" in ed.current_text()


@pytest.mark.timeout(1200)  # signing renders a signed PDF: slow on a loaded machine
def test_sign_dialog_signs_off_thread_and_editor_becomes_read_only(qtbot, env, radiologist):
    ed = _written(qtbot, _editor(qtbot, env, radiologist))
    v = env.service.version(ed.version.id)
    dialog = SignDialog(env.service, v, radiologist, env.service.identity(STUDY_UID), ed)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.password.setText("wrong password!")
    dialog.start_signing()
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=10000)
    assert "wrong" in dialog.error.text()
    dialog.password.setText(PASSWORD)
    with qtbot.waitSignal(dialog.accepted, timeout=180_000):  # signing makes four signed documents
        dialog.start_signing()
    assert dialog.signed_version.is_signed
    ed.reload()
    assert ed.editors["findings"].isReadOnly() and not ed.sign_button.isEnabled() and ed.amend_button.isEnabled()
    with pytest.raises(ImmutableVersionError):
        ed.load_ai_draft("x", "y", PROV)
    ed.amend("addendum")
    assert ed.version.kind == "addendum" and not ed.editors["addendum"].isReadOnly()
    assert ed.editors["findings"].isReadOnly()


def test_sign_dialog_unlocks_a_key_with_its_own_password(qtbot, env, radiologist):
    """A key file protected by its own password (cert create --key-password): typed into the dialog's key
    password field; without it the dialog says so and nothing is signed."""
    from PySide6.QtCore import Qt

    from app.reports.keys import default_p12_path, rewrap_p12
    from app.reports.verify_documents import verify_version

    key_pw = "separate key secret 9"
    rewrap_p12(default_p12_path("rad"), PASSWORD, key_pw)
    ed = _written(qtbot, _editor(qtbot, env, radiologist))  # nothing is saved before the radiologist writes
    v = env.service.version(ed.version.id)
    dialog = SignDialog(env.service, v, radiologist, env.service.identity(STUDY_UID), ed)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.keyClicks(dialog.password, PASSWORD)
    qtbot.mouseClick(dialog.sign_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=20000)
    assert "own password" in dialog.error.text(), dialog.error.text()
    assert env.service.version(v.id).status != "final"
    qtbot.keyClicks(dialog.password, PASSWORD)
    qtbot.keyClicks(dialog.key_password, key_pw)
    with qtbot.waitSignal(dialog.accepted, timeout=30000):
        qtbot.mouseClick(dialog.sign_button, Qt.MouseButton.LeftButton)
    assert dialog.signed_version.is_signed
    assert verify_version(env.db, v.id).ok


def test_resident_cannot_sign(qtbot, env, resident):
    ed = _written(qtbot, _editor(qtbot, env, resident))
    assert not ed.sign_button.isEnabled() and ed.prelim_button.isEnabled()
    assert "only a radiologist" in ed.sign_button.toolTip()
    ed.mark_preliminary()
    assert ed.version.status == "preliminary"


def test_login_dialog(qtbot, env, radiologist):
    dlg = LoginDialog(env.users, username="rad")
    qtbot.addWidget(dlg)
    dlg.password.setText("nope nope")
    dlg.try_login()
    assert dlg.session is None and "wrong" in dlg.error.text()
    dlg.password.setText(PASSWORD)
    dlg.try_login()
    assert dlg.session is not None and dlg.session.username == "rad"


def test_outbox_widget_lists_items_and_states(qtbot, env, radiologist):
    from app.pacs.nodes import PacsNode
    from app.reports.send import send  # noqa: F401  (the real sender exists)

    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.sign(v.id, radiologist, PASSWORD)
    node = PacsNode(name="p", protocol="dimse", ae_title="P", host="127.0.0.1", port=104)
    calls = []

    def flaky(_node, _payload):
        calls.append(1)
        if len(calls) == 1:
            from app.pacs.errors import PacsConnectionError
            raise PacsConnectionError("cannot reach p")
        return "confirmed"

    box = Outbox(env.service, nodes=lambda _n: node, sender=flaky, base_delay_s=0)
    box.enqueue(v.id, "p", radiologist)
    w = OutboxWidget(box, auto_send_ms=0)
    qtbot.addWidget(w)
    assert w.table.item(0, 3).text() == "queued"
    w.send_due()
    qtbot.waitUntil(lambda: w.table.item(0, 3).text() == "retry", timeout=5000)
    assert "cannot reach" in w.table.item(0, 5).text()
    w.table.selectRow(0)
    w.retry_selected()
    qtbot.waitUntil(lambda: w.table.item(0, 3).text() == "sent", timeout=5000)
    assert w.table.item(0, 4).text() == "2/5"  # attempts counted


def test_session_timeout_locks_editor_and_keeps_text(qtbot, env, radiologist):
    import datetime as dt

    ed = _written(qtbot, _editor(qtbot, env, radiologist, autosave_ms=1000))
    edit = ed.editors["findings"]
    edit.setPlainText("Typed just before the timeout.")
    radiologist.last_activity -= dt.timedelta(hours=1)
    assert not ed.save_now()
    assert edit.isReadOnly() and "timed out" in ed.banner.text()
    assert edit.toPlainText() == "Typed just before the timeout."  # nothing lost
    radiologist.last_activity = dt.datetime.now(dt.UTC)  # logged in again
    ed._check_session()
    assert not edit.isReadOnly()
    assert env.service.version(ed.version.id).content.get("findings") == "Typed just before the timeout."


def test_editor_exports_every_format(qtbot, env, radiologist, tmp_path):
    from app.reports.exporting import FORMATS

    ed = _written(qtbot, _editor(qtbot, env, radiologist))
    assert ed.export_to("pdf", tmp_path / "x.pdf") is None and "signed" in ed.banner.text()
    env.service.sign(ed.version.id, radiologist, PASSWORD)
    ed.reload()
    for fmt, (_label, suffix) in FORMATS.items():
        assert ed.export_to(fmt, tmp_path / f"r-{fmt}{suffix}").stat().st_size > 100


def test_editor_opened_before_login_opens_after_login(qtbot, env, radiologist):
    who = {"user": None}
    ed = ReportEditor(env.db, STUDY_UID, lambda: who["user"], service=env.service)
    qtbot.addWidget(ed)
    assert ed.version is None and "Log in" in ed.banner.text() and ed.editors["findings"].isReadOnly()
    assert not ed.sign_button.isEnabled() and "Log in" in ed.sign_button.toolTip()
    who["user"] = radiologist
    ed._check_session()
    assert not ed.editors["findings"].isReadOnly() and "Lungs:" in ed.editors["findings"].toPlainText()


def test_second_reader_sees_the_claim_read_only_then_takes_over_and_conflicts_are_refused(qtbot, env, radiologist):
    from PySide6.QtGui import QGuiApplication

    from app.reports.claims import ClaimService
    from tests.support.reports_testing import make_user

    other = make_user(env, "rad2", "radiologist")
    env.service.open_or_create(STUDY_UID, radiologist)  # reader A started the report (a new one is claimed on
    ed_a = _editor(qtbot, env, radiologist)              # its first save)
    ed_b = ReportEditor(env.db, STUDY_UID, lambda: other, service=env.service, autosave_ms=100,
                        claims=ClaimService(env.db, workstation="reading-room-2"))
    qtbot.addWidget(ed_b)
    ed_b.show()
    assert ed_a.claim is not None and ed_b.claimed_by is not None
    assert ed_b.editors["findings"].isReadOnly() and not ed_b.sign_button.isEnabled()
    assert "being read by Dr Rad (rad)" in ed_b.banner.text()

    findings = ed_a.editors["findings"]
    findings.setFocus()
    findings.moveCursor(findings.textCursor().MoveOperation.End)
    with qtbot.waitSignal(ed_a.autosaved, timeout=30000):
        qtbot.keyClicks(findings, " Reader A.")
    ed_a.close()  # saves and gives the report back
    ed_b._check_session()  # the editor's 5-second timer, run now
    assert ed_b.claimed_by is None and not ed_b.editors["findings"].isReadOnly()
    assert ed_b.editors["findings"].toPlainText().endswith("Reader A.")

    # the same report changed elsewhere (rad2 on another machine) after ed_b loaded it: ed_b's save is refused
    v = env.service.version(ed_b.version.id)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": "Changed elsewhere."}, other,
                           expected_revision=v.revision)
    edit = ed_b.editors["findings"]
    edit.setFocus()
    edit.moveCursor(edit.textCursor().MoveOperation.End)
    qtbot.keyClicks(edit, " Reader B.")
    assert not ed_b.save_now()
    assert "Not saved" in ed_b.banner.text() and "rad2" in ed_b.banner.text()
    assert ed_b.editors["findings"].toPlainText().endswith("Reader B.")  # nothing typed is lost
    assert env.service.version(v.id).content.get("findings") == "Changed elsewhere."
    ed_b.reload()
    assert ed_b.editors["findings"].toPlainText() == "Changed elsewhere."
    assert QGuiApplication.clipboard().text().count("Reader B.") == 1
