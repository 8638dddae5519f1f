"""The main window's part of issue 21: the outbox sends in the background with a visible state per item, and
a report that arrived from elsewhere opens read-only in a "Prior reports" tab and sets the study's status."""

from __future__ import annotations

from sqlalchemy import select

from app.db.database import Database
from app.db.models import Study
from app.demo_studies import demo_study_uids, ensure_demo_imported
from app.importer import ImportService
from app.reports.document import build_document
from app.reports.export_sr import write_sr
from tests.support.reports_testing import PASSWORD, free_port


def _signed_sr(env, user, study_uid, tmp_path):
    v = env.service.open_or_create(study_uid, user)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": "Lungs clear.", "impression": "Normal chest."},
                           user)
    v = env.service.sign(v.id, user, PASSWORD)
    return v, write_sr(build_document(env.service, v.id), tmp_path / "prior_sr.dcm")


def test_outbox_sends_in_the_background_and_shows_each_items_state(qtbot, env, radiologist, tmp_path):
    from app.main_window import MainWindow
    from app.pacs.nodes import NodeStore, PacsNode

    ensure_demo_imported(env.db)
    study_uid = demo_study_uids()[0]
    v, _ = _signed_sr(env, radiologist, study_uid, tmp_path)
    NodeStore().upsert(PacsNode(name="dead", protocol="dimse", ae_title="NOBODY", host="127.0.0.1",
                                port=free_port(), timeout=2))
    window = MainWindow(env.db)
    qtbot.addWidget(window)
    ids = window.outbox.outbox.enqueue(v.id, "dead", radiologist, documents=("sr",))
    window._outbox_queued(ids)
    qtbot.waitUntil(lambda: window.outbox.table.rowCount() == 1 and window.outbox.table.item(0, 3).text() == "retry",
                    timeout=60000)
    assert "Connection" in window.outbox.table.item(0, 5).text() or window.outbox.table.item(0, 5).text()
    assert window._outbox_label.text().startswith("Outbox: 1 waiting")
    window.close()


def test_a_report_from_elsewhere_opens_read_only_and_sets_the_status(qtbot, env, radiologist, tmp_path, monkeypatch):
    from app.main_window import MainWindow

    ensure_demo_imported(env.db)
    study_uid = demo_study_uids()[0]
    _v, sr_path = _signed_sr(env, radiologist, study_uid, tmp_path)
    other = Database.open(f"sqlite:///{tmp_path / 'other.db'}", store_dir=tmp_path / "other-store")
    try:
        ensure_demo_imported(other)
        assert ImportService(other).run([str(sr_path)]).imported == 1
        window = MainWindow(other)
        qtbot.addWidget(window)
        assert window.open_study(study_uid)
        qtbot.waitUntil(lambda: window.open_lookups_ready and window.prior_reports is not None, timeout=30000)
        panel = window.prior_reports
        assert panel is not None and window.side_tabs.indexOf(panel) >= 0
        assert "Normal chest." in panel.text.toPlainText() and panel.text.isReadOnly()
        with other.session() as s:
            assert s.scalar(select(Study.report_status).where(Study.study_uid == study_uid)) == "final"
        qtbot.waitUntil(lambda: window.ai_images_ready, timeout=30000)
        window.close()
    finally:
        other.dispose()
