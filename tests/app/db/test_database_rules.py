"""The database itself refuses to change signed reports and the audit log (SQLite and PostgreSQL triggers).

Each attack is a direct SQL statement, as someone with the database password would send it, bypassing
the report service and the ORM guard; the test runs on both databases (see tests/app/conftest.py).
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.db.database import Database, DatabaseError, normalise_url
from app.reports import audit
from app.reports.models import Report, ReportSignature, ReportVersion, User


@pytest.fixture
def signed(db: Database) -> int:
    """A final version with its signature and three audit entries, written as the service would."""
    with db.session() as s:
        user = User(username="rad", role="radiologist", password_hash="x")
        s.add(user)
        s.flush()
        report = Report(study_uid="1.2.3", created_by_id=user.id)
        s.add(report)
        s.flush()
        v = ReportVersion(report_id=report.id, version_no=1, status="final", sections={"findings": "Clear."},
                          author_id=user.id, signed_at="2026-01-01T00:00:00+00:00")
        s.add(v)
        s.flush()
        s.add(ReportSignature(version_id=v.id, signer_id=user.id, signed_at=v.signed_at, canonical=b"{}",
                              signature=b"sig", algorithm="rsa-pss-sha256", certificate_der=b"cert"))
        for i in range(3):
            audit.append(s, "view", "rad", "report_version", v.id, {"n": i})
        return v.id


def _refused(db: Database, sql: str, match: str, **params) -> None:
    with pytest.raises(DBAPIError, match=match), db.engine.begin() as c:
        c.execute(text(sql), params)


ATTACKS = [
    ("update report_version set sections='{}' where id=:i", "immutable"),
    ("update report_version set status='draft' where id=:i", "immutable"),
    ("delete from report_version where id=:i", "immutable"),
    ("update report_signature set signature=canonical where version_id=:i", "immutable"),
    ("delete from report_signature where version_id=:i", "immutable"),
    ("update audit_entry set details='{}' where seq=2", "append-only"),
    ("delete from audit_entry where seq=3", "append-only"),
    ("update audit_head set count=count-1, last_hash='0' where id=1", "only moves forward"),
    ("delete from audit_head", "cannot be deleted"),
]


@pytest.mark.parametrize(("sql", "match"), ATTACKS, ids=[a[0].split(" where")[0] for a in ATTACKS])
def test_direct_sql_cannot_change_signed_reports_or_the_audit_log(db: Database, signed: int, sql: str,
                                                                   match: str) -> None:
    _refused(db, sql, match, i=signed)
    with db.session() as s:
        assert audit.verify_chain(s).ok
        assert s.get(ReportVersion, signed).status == "final"


def test_unsigned_versions_and_the_audit_head_still_move(db: Database, signed: int) -> None:
    with db.engine.begin() as c:
        rid = c.scalar(text("select report_id from report_version where id=:i"), {"i": signed})
        c.execute(text("insert into report_version (report_id, version_no, kind, status, sections, ai_generated, "
                       "human_edited, ai_accepted, revision, created_at, updated_at, signed_at) values "
                       "(:r, 2, 'amendment', 'draft', '{}', false, false, false, 0, current_timestamp, "
                       "current_timestamp, '')"), {"r": rid})
        c.execute(text("update report_version set sections='{\"findings\": \"new\"}' where version_no=2"))
        c.execute(text("delete from report_version where version_no=2"))
    with db.session() as s:
        audit.append(s, "view", "rad")
    with db.session() as s:
        assert audit.verify_chain(s).count == 4


@pytest.mark.postgres
def test_postgres_refuses_truncate_and_downgrade_removes_its_triggers(postgres) -> None:
    database = Database.open(postgres.new_database())
    try:
        for table in ("audit_entry", "report_signature", "report_version", "audit_head"):
            _refused(database, f"truncate {table} cascade", "cannot be truncated")
        from alembic import command

        from app.db.migrate import alembic_config

        cfg = alembic_config(database.engine)
        with database.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003_audit_keys")
        with database.engine.begin() as c:
            assert c.scalar(text("select count(*) from pg_trigger where tgname like 'audit_%' "
                                 "or tgname like 'report_%'")) == 0
            c.execute(text("truncate audit_entry"))
    finally:
        database.dispose()


def test_postgres_urls_mean_psycopg3() -> None:
    assert normalise_url("postgresql://u:p@db.example:5432/rad").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@db/rad").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql+psycopg://u@db/rad").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite"


def test_unknown_database_kind_is_a_clear_error(home) -> None:
    with pytest.raises(DatabaseError, match="unknown database kind"):
        Database.open("nosuchdb://u@h/x")
