"""Opening the database: migrations on start, SQLite pragmas, URL overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text

from app.db.database import Database, DatabaseError
from app.db.migrate import alembic_config, current_revision, head_revision
from app.db.models import AiDraft, Patient, QaMessage, Study


@pytest.mark.sqlite_only
def test_migration_creates_schema_on_empty_database(db: Database, home: Path) -> None:
    assert (home / "data" / "radstation.db").exists()
    assert current_revision(db.engine) == head_revision()
    base = ScriptDirectory.from_config(alembic_config()).get_revision("0001_initial")
    assert base.down_revision is None  # later parts chain their revisions onto this one
    tables = set(inspect(db.engine).get_table_names())
    assert {"patient", "study", "series", "instance", "measurement", "import_batch", "import_issue",
            "ai_draft", "qa_message", "alembic_version"} <= tables
    columns = {c["name"] for c in inspect(db.engine).get_columns("study")}
    assert "report_status" in columns


def test_migration_is_idempotent(db: Database) -> None:
    with db.session() as s:
        s.add(Patient(patient_key="id:|1", patient_id="1", name="A^B"))
    again = Database.open(db.url)  # a second start runs upgrade again: no error, nothing lost
    try:
        assert current_revision(again.engine) == head_revision()
        with again.session() as s:
            assert s.scalar(select(Patient.name)) == "A^B"
            assert s.scalar(text("select count(*) from alembic_version")) == 1
    finally:
        again.dispose()


@pytest.mark.sqlite_only
def test_sqlite_runs_in_wal_mode_with_foreign_keys(db: Database) -> None:
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_environment_url_overrides_default(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "elsewhere" / "other.db"
    monkeypatch.setenv("RADSTATION_DB_URL", f"sqlite:///{other}")
    db = Database.open()
    try:
        assert db.url.endswith("other.db")
        assert other.exists()
        assert not (home / "data" / "radstation.db").exists()
        assert current_revision(db.engine) == head_revision()
    finally:
        db.dispose()


def test_setting_url_is_used_when_no_environment(home: Path, tmp_path: Path) -> None:
    from app.settings import Settings

    settings = Settings()
    settings.set("db_url", f"sqlite:///{tmp_path / 'from_settings.db'}")
    settings.save()
    db = Database.open()
    try:
        assert db.url.endswith("from_settings.db")
    finally:
        db.dispose()


def test_bad_url_is_a_clear_error(home: Path) -> None:
    with pytest.raises(DatabaseError, match="not a database URL"):
        Database.open("this is not a url")


def test_report_status_is_validated_and_defaults_to_none(db: Database) -> None:
    with db.session() as s:
        p = Patient(patient_key="k", name="X")
        study = Study(study_uid="1.2.3", patient=p)
        s.add(study)
        s.flush()
        s.refresh(study)
        assert study.report_status == "none"
        study.report_status = "final"
        with pytest.raises(ValueError, match="report_status"):
            study.report_status = "signed-ish"


def test_ai_rows_cascade_with_their_study(db: Database) -> None:
    with db.session() as s:
        study = Study(study_uid="1.2.4", patient=Patient(patient_key="k2"))
        s.add(study)
        s.flush()
        s.add(AiDraft(study_db_id=study.id, engine="diffusion", findings="clear", images_used=["1.2"]))
        s.add(QaMessage(study_db_id=study.id, question="effusion?", answer="no", confidence=0.9))
    with db.session() as s:
        s.delete(s.scalar(select(Study)))
    with db.session() as s:
        assert s.scalar(select(AiDraft)) is None
        assert s.scalar(select(QaMessage)) is None
