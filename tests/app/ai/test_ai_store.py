"""Drafts and answers are stored in a write transaction from their first read: SQLite refuses a deferred
transaction that read first and writes after another writer committed ("database is locked" at once, whatever
the busy timeout), which is what several pre-draft threads beside an import produce."""

from __future__ import annotations

import sqlite3
import threading

import pytest

import app.ai.ai_store as ai_store
from app.db.database import Database
from app.db.models import Patient, Study
from engines.backends.results import TextOutput


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    path = tmp_path / "store.db"
    database = Database.open(f"sqlite:///{path}")
    with database.session() as s:
        s.add(Study(study_uid="1.2.3.7", patient=Patient(patient_key="|P", patient_id="P", name="A^B"),
                    modalities="DX", report_status="none"))
    yield database, path
    database.dispose()


def _another_writer_commits_after_the_first_read(monkeypatch, path) -> list[str]:
    """After the store's first read, another connection writes and commits (as an import would); returns the
    list its outcome is appended to."""
    outcome: list[str] = []
    read = ai_store._study_id

    def commit_elsewhere() -> None:
        con = sqlite3.connect(path, timeout=10)
        try:
            con.execute("UPDATE study SET modalities = modalities WHERE study_uid = '1.2.3.7'")
            con.commit()
            outcome.append("committed")
        except sqlite3.Error as exc:
            outcome.append(f"failed: {exc}")
        finally:
            con.close()

    def read_then_let_a_writer_in(session, study_uid):
        sid = read(session, study_uid)
        writer = threading.Thread(target=commit_elsewhere, daemon=True)
        writer.start()
        writer.join(0.5)  # it commits now unless this transaction already holds the write lock
        return sid

    monkeypatch.setattr(ai_store, "_study_id", read_then_let_a_writer_in)
    return outcome


def _wait_for(outcome: list[str]) -> None:
    for _ in range(200):  # the other writer gets its turn once this one has committed
        if outcome:
            return
        threading.Event().wait(0.05)


def test_a_draft_is_stored_when_another_writer_commits_after_its_first_read(db, monkeypatch):
    database, path = db
    outcome = _another_writer_commits_after_the_first_read(monkeypatch, path)
    result = TextOutput(text="Heart size normal. No acute disease.", findings="Heart size normal.", impression="No acute disease.", seed=3)
    draft_id = ai_store.save_draft(database, "1.2.3.7", result, ["1.2.3.7.1.1"])
    assert draft_id is not None
    rows = ai_store.drafts_for(database, "1.2.3.7")
    assert [r["findings"] for r in rows] == ["Heart size normal."]
    _wait_for(outcome)
    assert outcome == ["committed"]


def test_an_answer_is_stored_when_another_writer_commits_after_its_first_read(db, monkeypatch):
    database, path = db
    outcome = _another_writer_commits_after_the_first_read(monkeypatch, path)
    assert ai_store.save_qa(database, "1.2.3.7", "Is there an effusion?", "No.", 0.8, "diffusion") is not None
    _wait_for(outcome)
    assert outcome == ["committed"]
