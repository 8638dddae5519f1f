"""Access to patient data lands in the audit log with user, patient, study and time: the workstation's
study open and image view, and the PACS query and retrieval paths (against a real Orthanc)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from app import access_audit
from app.db.database import Database
from app.demo_studies import demo_study_uids, ensure_demo_imported
from app.reports import audit
from app.reports.models import AuditEntry


@pytest.fixture()
def database(tmp_path, monkeypatch) -> Database:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    db = Database.open(f"sqlite:///{tmp_path / 'rs.db'}", store_dir=tmp_path / "store")
    yield db
    access_audit._actor.update(name=None, workstation=False)
    db.dispose()


def _entries(db: Database, action: str | None = None) -> list[tuple[str, str, str, str, dict]]:
    with db.session() as s:
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        return [(e.action, e.username, e.object_type, e.object_id, json.loads(e.details))
                for e in rows if action is None or e.action == action]


def test_opening_a_study_and_showing_its_images_is_audited_per_user(qtbot, database: Database) -> None:
    from app.main_window import MainWindow

    ensure_demo_imported(database)
    window = MainWindow(database)
    qtbot.addWidget(window)
    window.show()
    uid = demo_study_uids()[0]
    assert window.open_study(uid)
    qtbot.waitUntil(lambda: any(e[2] == "series" for e in _entries(database, "view")), timeout=10000)
    views = _entries(database, "view")
    study = next(e for e in views if e[2] == "study")
    assert study[3] == uid and study[4]["access"] == "study opened"
    assert study[4]["patient_id"] and "patient_name" in study[4]
    assert study[1].endswith("(not logged in)")  # nobody logged in: the OS user, marked
    series = [e for e in views if e[2] == "series"]
    assert len(series) == 1 and series[0][4]["study_uid"] == uid  # once per series, not per repaint
    access_audit.set_actor("dr_house")
    assert window.open_study(uid)
    access_audit.set_actor("someone_else")  # the entry names who opened it, not who is logged in when written
    assert access_audit.flush(10)
    assert [e[1] for e in _entries(database, "view") if e[2] == "study"][-1] == "dr_house"
    with database.session() as s:
        assert audit.verify_chain(s).ok  # the same hash chain as the report events


def test_access_entries_are_written_in_order_and_none_is_lost_while_the_database_is_locked(
        database: Database) -> None:
    """Another program holds the SQLite write lock for a second: the GUI's entries are recorded without
    waiting for it, then land in the order they were recorded, interleaved with one that waited, none lost."""
    import sqlite3
    import time

    ensure_demo_imported(database)
    uid = demo_study_uids()[0]
    access_audit.set_actor("dr_house")
    blocker = sqlite3.connect(database.engine.url.database, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.perf_counter()
        for n in range(5):
            access_audit.images_viewed(database, uid, f"1.2.3.{n}", "CR", wait=False)
        queued_in = time.perf_counter() - started
        assert access_audit.WRITER.pending() >= 4  # nothing could be written yet
        time.sleep(1.0)
    finally:
        blocker.rollback()
        blocker.close()
    access_audit.exported(database, uid, "report", "/tmp/r.pdf")  # waits: written after the five before it
    assert queued_in < 0.05
    series = [(e[2], e[3]) for e in _entries(database) if e[2] in ("series", "study")]
    assert series == [("series", f"1.2.3.{n}") for n in range(5)] + [("study", uid)]
    assert access_audit.flush(5) and access_audit.WRITER.pending() == 0
    with database.session() as s:  # each entry keeps when the access happened, not only when it was written
        rows = [e for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id)) if e.object_type == "series"]
        for e in rows:  # the database was locked for a second: written at least that much after the access
            accessed = dt.datetime.fromisoformat(json.loads(e.details)["accessed_at"])
            assert (dt.datetime.fromisoformat(e.at) - accessed).total_seconds() > 0.5
    with database.session() as s:
        assert audit.verify_chain(s).ok


def test_a_failed_audit_write_is_retried_in_place_and_later_entries_wait_for_it() -> None:
    from app.access_audit_writer import AccessAuditWriter

    writer = AccessAuditWriter(retry_delays=(0.01, 0.01, 0.01))
    written: list[str] = []
    failures = iter([RuntimeError("database went away"), RuntimeError("still away")])

    def flaky() -> None:
        exc = next(failures, None)
        if exc is not None:
            raise exc
        written.append("first")

    writer.submit(flaky, "first")
    writer.submit(lambda: written.append("second"), "second")
    assert writer.flush(5)
    assert written == ["first", "second"] and writer.failed == 0

    def broken() -> None:
        raise RuntimeError("disk full")

    assert writer.submit(broken, "given up", wait=True) is False  # every retry failed: logged, counted
    assert writer.failed == 1 and writer.submit(lambda: written.append("third"), "third", wait=True)
    assert written[-1] == "third"


def test_writer_thread_started_ahead_writes_the_later_entries(database: Database) -> None:
    """The study-open warm-up starts the writer thread, so the first open's entries do not start it on the GUI
    thread (a thread start waits until the OS runs the thread)."""
    import threading

    from app.access_audit_writer import WRITER, AccessAuditWriter
    from app.study_open_warmup import warm_study_open

    writer = AccessAuditWriter()
    writer.start()
    started = writer._thread
    assert started is not None and started.is_alive() and started.name == "access-audit"
    writer.start()  # already running: the same thread
    by: list[threading.Thread] = []
    assert writer.submit(lambda: by.append(threading.current_thread()), "one", wait=True)
    assert by == [started] and writer._thread is started

    warm_study_open(database)  # an empty database: nothing to warm, the writer is started all the same
    assert WRITER._thread is not None and WRITER._thread.is_alive()


def test_entries_of_a_study_opened_just_before_closing_are_written_at_close(qtbot, database: Database) -> None:
    from app.main_window import MainWindow

    ensure_demo_imported(database)
    window = MainWindow(database)
    qtbot.addWidget(window)
    window.show()
    uids = demo_study_uids()
    access_audit.set_actor("dr_house")
    for uid in uids[:3]:
        assert window.open_study(uid)
    qtbot.waitUntil(lambda: window.ai_images_ready, timeout=20000)
    window.close()
    assert access_audit.WRITER.pending() == 0
    opened = [e[3] for e in _entries(database, "view") if e[2] == "study"]
    assert opened == list(uids[:3])


def test_command_line_access_is_recorded_as_the_os_user(database: Database) -> None:
    access_audit._actor.update(name=None, workstation=False)
    access_audit.exported(database, "1.2.3", "explanation map", "/tmp/x.png")
    (action, user, kind, oid, details), = _entries(database)
    assert (action, kind, oid) == ("export", "study", "1.2.3") and user.startswith("os:")
    assert details["target"] == "/tmp/x.png"


@pytest.mark.orthanc
def test_pacs_query_and_retrieve_are_audited(orthanc, database: Database, monkeypatch) -> None:
    from app.pacs.clients import client_for, find_studies_recorded
    from app.pacs.nodes import PacsNode
    from app.pacs.query import QueryFilter
    from app.pacs.retrieve import RetrieveService
    from tests.support.orthanc_fixture import make_study

    study = make_study("AUD-1", "AUDIT^PATIENT", n_instances=2, seed=5)
    for ds in study:
        orthanc.upload(ds)
    access_audit.set_actor("dr_watson")
    node = PacsNode("orthanc", ae_title=orthanc.aet, host=orthanc.host, port=orthanc.dicom_port,
                    calling_ae=orthanc.client_aet, timeout=10)
    results = find_studies_recorded(client_for(node), database, QueryFilter(patient_id="AUD-1"))
    assert [r.patient_id for r in results] == ["AUD-1"]
    (_, user, kind, oid, details), = _entries(database, "query")
    assert user == "dr_watson" and kind == "pacs_query" and "orthanc" in oid
    assert details["criteria"]["patient_id"] == "AUD-1" and details["results"] == 1
    assert details["patients"] == [{"patient_id": "AUD-1", "patient_name": "AUDIT^PATIENT"}]
    assert RetrieveService(database, node).retrieve_study(study[0].StudyInstanceUID).ok
    (_, user, kind, oid, details), = _entries(database, "retrieve")
    assert (user, kind, oid) == ("dr_watson", "study", study[0].StudyInstanceUID)
    assert details["patient_id"] == "AUD-1" and details["instances"] == 2 and details["state"] == "done"


def test_exports_name_the_user_the_patient_and_the_study(database: Database, tmp_path, capsys) -> None:
    """The issue's finding: CLI exports were recorded as 'console' with no patient. A report exported from
    the command line now names the OS user, the patient and the study; the explanation map written to a
    folder is an export too, with the logged-in user."""
    import numpy as np
    import pydicom
    from argon2 import PasswordHasher, Type

    from app.cli import main
    from app.db.models import Instance, Series, Study
    from app.dicom_objects.explain_export import export_explanation
    from app.reports.service import ReportService
    from app.reports.users import UserService
    from explain.dicom_maps import MapSource

    access_audit._actor.update(name=None, workstation=False)
    ensure_demo_imported(database)
    uid = demo_study_uids()[0]
    users = UserService(database, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID))
    users.add_user("root", "correct horse 1", "admin")
    admin = users.authenticate("root", "correct horse 1")
    users.add_user("rad", "correct horse 1", "radiologist", actor=admin)
    version = ReportService(database, users).open_or_create(uid, users.authenticate("rad", "correct horse 1"))
    out = tmp_path / "report.txt"
    assert main(["report", "export", "--version", str(version.id), "--format", "text", "--out", str(out),
                 "--db", str(database.engine.url)]) == 0, capsys.readouterr()
    with database.session() as s:
        patient_id = s.scalar(select(Study).where(Study.study_uid == uid)).patient.patient_id
    (_, user, kind, oid, details), = _entries(database, "export")
    assert user == access_audit.actor() and user.startswith("os:") and user != "console"
    assert (kind, oid) == ("report_version", str(version.id))
    assert details["study_uid"] == uid and details["patient_id"] == patient_id and details["target"] == str(out)

    with database.session() as s:
        path = s.scalar(select(Instance.file_path).join(Series).join(Study).where(Study.study_uid == uid))
    source = pydicom.dcmread(database.store_path(path))
    values = np.zeros((source.Rows, source.Columns), np.float32)
    values[10:40, 10:40] = 0.9
    access_audit.set_actor("dr_house")
    export_explanation(source, values, MapSource("attention"), tmp_path / "maps", database=database)
    (_, user, kind, oid, details) = _entries(database, "export")[-1]
    assert (user, kind, oid) == ("dr_house", "study", uid)
    assert details["patient_id"] == patient_id and details["target"] == str(tmp_path / "maps")
    assert "SEG_" in details["what"]
    with database.session() as s:
        assert audit.verify_chain(s).ok
