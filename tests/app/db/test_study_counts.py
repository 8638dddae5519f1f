"""Series/instance counts kept by the database (migration 0004_study_counts), on SQLite and PostgreSQL.

Each test changes the hierarchy the way some writer could (the importer, the ORM deleting a study, raw SQL
deleting a series and letting the foreign keys cascade, rows moved between parents) and compares the kept
counts with counts taken from the rows themselves.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, delete, func, select, text, update

from app.db.database import Database
from app.db.migrate import alembic_config
from app.db.models import AiDraft, Instance, Patient, PatientNameWord, Series, Study
from app.db.queries import search_studies
from app.importer import ImportService
from app.importer.synthetic import SyntheticStudy, write_series

TRUTH = """
SELECT st.study_uid,
       (SELECT count(*) FROM series s WHERE s.study_db_id = st.id) AS series_n,
       (SELECT count(*) FROM instance i JOIN series s ON i.series_db_id = s.id WHERE s.study_db_id = st.id) AS inst_n,
       st.series_count, st.instance_count
FROM study st ORDER BY st.study_uid
"""


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on loopback (trust auth, fsync off); yields its base URL."""
    bindir = _pg_bin()
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed")
    if bindir is None:
        pytest.skip("PostgreSQL is not installed")
    work = Path(tempfile.mkdtemp(prefix="radstation-pgcounts-"))
    user = "postgres" if os.geteuid() == 0 else None  # initdb refuses root
    if user:
        os.chown(work, pwd.getpwnam(user).pw_uid, -1)
    subprocess.run([str(bindir / "initdb"), "-D", str(work / "data"), "-U", "radstation", "--auth=trust",
                    "-E", "UTF8", "--locale=C", "--no-sync"], user=user, check=True, capture_output=True, cwd=work)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(bindir / "postgres"), "-D", str(work / "data"), "-p", str(port), "-k", str(work),
                             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"], user=user, cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(host="127.0.0.1", port=port, user="radstation", dbname="postgres").close()
                break
            except psycopg.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"postgresql+psycopg://radstation@127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def any_db(request: pytest.FixtureRequest, home: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database.open()
    else:
        import psycopg

        base = request.getfixturevalue("pg_server")
        name = f"counts_{os.urandom(6).hex()}"
        with psycopg.connect(base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        database = Database.open(f"{base}/{name}", store_dir=home / "store")
    yield database
    database.dispose()


def _check(db: Database) -> list[tuple[int, int]]:
    """Kept counts equal the rows' own counts for every study; returns (series, instances) per study."""
    with db.engine.connect() as conn:
        rows = conn.execute(text(TRUTH)).all()
        series_rows = conn.execute(text(
            "SELECT s.instance_count, (SELECT count(*) FROM instance i WHERE i.series_db_id = s.id) FROM series s"
        )).all()
    for uid, series_n, inst_n, kept_series, kept_inst in rows:
        assert (kept_series, kept_inst) == (series_n, inst_n), uid
    assert all(kept == truth for kept, truth in series_rows)
    return [(r[1], r[2]) for r in rows]


def _import(db: Database, tmp_path: Path) -> dict[str, SyntheticStudy]:
    made = {"a": SyntheticStudy("A^A", "PA"), "b": SyntheticStudy("B^B", "PB")}
    write_series(tmp_path / "src" / "a1", made["a"], 3)
    write_series(tmp_path / "src" / "a2", made["a"], 2, series_number=2)
    write_series(tmp_path / "src" / "b1", made["b"], 4)
    assert ImportService(db, commit_every=4).run([tmp_path / "src"]).imported == 9
    return made


def test_import_keeps_counts(any_db: Database, tmp_path: Path) -> None:
    made = _import(any_db, tmp_path)
    assert sorted(_check(any_db)) == [(1, 4), (2, 5)]
    with any_db.session() as s:
        rows = {r.study_uid: r for r in search_studies(s)}
    assert (rows[made["a"].study_uid].series_count, rows[made["a"].study_uid].instance_count) == (2, 5)
    # A second import of the same files adds nothing and counts nothing twice.
    assert ImportService(any_db).run([tmp_path / "src"]).duplicates == 9
    assert sorted(_check(any_db)) == [(1, 4), (2, 5)]


def test_deletes_and_cascades_keep_counts(any_db: Database, tmp_path: Path) -> None:
    made = _import(any_db, tmp_path)
    with any_db.session() as s:  # one instance, by the ORM
        s.delete(s.scalars(select(Instance).limit(1)).one())
    _check(any_db)
    with any_db.engine.begin() as conn:  # a whole series by SQL: its instances go by ON DELETE CASCADE
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        conn.execute(delete(Series).where(Series.id == select(Series.id).order_by(Series.id).limit(1)
                                          .scalar_subquery()))
    _check(any_db)
    with any_db.session() as s:  # a study by the ORM (its series and instances by the relationship cascade)
        s.delete(s.scalars(select(Study).where(Study.study_uid == made["b"].study_uid)).one())
    assert len(_check(any_db)) == 1


def test_moves_between_parents_keep_counts(any_db: Database, tmp_path: Path) -> None:
    made = _import(any_db, tmp_path)
    with any_db.session() as s:
        a = s.scalars(select(Study).where(Study.study_uid == made["a"].study_uid)).one()
        b = s.scalars(select(Study).where(Study.study_uid == made["b"].study_uid)).one()
        a_series = s.scalars(select(Series).where(Series.study_db_id == a.id).order_by(Series.id)).all()
        b_series = s.scalars(select(Series).where(Series.study_db_id == b.id)).one()
        a_ids = [x.id for x in a_series]
        b_id, b_series_id = b.id, b_series.id
    with any_db.engine.begin() as conn:
        # two instances of A's first series into B's series, in one statement
        moved = select(Instance.id).where(Instance.series_db_id == a_ids[0]).order_by(Instance.id).limit(2)
        conn.execute(update(Instance).where(Instance.id.in_(moved)).values(series_db_id=b_series_id))
    assert sorted(_check(any_db)) == [(1, 6), (2, 3)]
    with any_db.engine.begin() as conn:  # A's second series (2 instances) into study B
        conn.execute(update(Series).where(Series.id == a_ids[1]).values(study_db_id=b_id))
    assert sorted(_check(any_db)) == [(1, 1), (2, 8)]
    with any_db.engine.begin() as conn:  # an update that changes nothing the counts depend on
        conn.execute(update(Series).values(description="renamed"))
    assert sorted(_check(any_db)) == [(1, 1), (2, 8)]


def test_migration_backfills_counts_of_existing_rows(home: Path, tmp_path: Path) -> None:
    """A database filled before 0004 gets its counts on upgrade, and downgrade/upgrade round-trips."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003_audit_keys")
    old = Database(engine, home / "store")
    with engine.begin() as conn:  # rows as a 0003 database holds them (no count columns yet)
        conn.exec_driver_sql("INSERT INTO patient (id, patient_key, patient_id, issuer, name, name_search, "
                             "birth_date, sex) VALUES (1, 'k', 'P', '', 'X^Y', 'X Y', '', '')")
        conn.exec_driver_sql("INSERT INTO study (id, study_uid, patient_db_id, study_time, accession, description, "
                             "referring_physician, modalities, report_status, created_at, updated_at) VALUES "
                             "(1, '1.2.3', 1, '', '', '', '', 'CT', 'none', '2024-01-01', '2024-01-01')")
        for sid in (1, 2):
            conn.exec_driver_sql(f"INSERT INTO series (id, series_uid, study_db_id, modality, description, "
                                 f"body_part, frame_of_reference_uid) VALUES ({sid}, '1.2.3.{sid}', 1, 'CT', '', '', '')")
        for iid in range(1, 8):
            conn.exec_driver_sql(f"INSERT INTO instance (sop_instance_uid, sop_class_uid, series_db_id, "
                                 f"number_of_frames, transfer_syntax_uid, file_path, file_size, file_sha256, "
                                 f"imported_at) VALUES ('1.2.3.9.{iid}', '', {1 + iid % 2}, 1, '', 'x', 0, '', "
                                 f"'2024-01-01')")
    for target in ("head", "0003_audit_keys", "head"):
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            (command.upgrade if target == "head" else command.downgrade)(cfg, target)
    assert _check(old) == [(2, 7)]
    engine.dispose()


def test_sqlite_worklist_sorts_read_an_index(db: Database, tmp_path: Path) -> None:
    """No worklist sort key makes SQLite sort the whole study table (the plan names an index instead).

    Without ANALYZE statistics, as the app runs; benchmarks/scale.py measures the same plans at 1M instances.
    """
    from app.db.queries import SORT_KEYS, worklist_statement

    _import(db, tmp_path)
    with db.engine.connect() as conn:
        for key in SORT_KEYS:
            if key == "ai_draft":
                continue
            for sort in (key, "-" + key):
                stmt = worklist_statement(sort=sort, limit=50)
                compiled = stmt.compile(conn, compile_kwargs={"literal_binds": True})
                plan = " | ".join(r[3] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
                assert "USE TEMP B-TREE FOR ORDER BY" not in plan, (sort, plan)


def test_ai_draft_flag_follows_drafts(any_db: Database, tmp_path: Path) -> None:
    made = _import(any_db, tmp_path)
    with any_db.session() as s:
        a = s.scalars(select(Study).where(Study.study_uid == made["a"].study_uid)).one()
        s.add_all([AiDraft(study_db_id=a.id, engine="diffusion"), AiDraft(study_db_id=a.id, engine="diffusion")])

    def flagged() -> list[str]:
        with any_db.session() as s:
            return [r.study_uid for r in search_studies(s, sort="-ai_draft") if r.has_ai_draft]

    assert flagged() == [made["a"].study_uid]
    with any_db.engine.begin() as conn:  # one of two drafts deleted: still flagged
        conn.execute(delete(AiDraft).where(AiDraft.id == select(func.min(AiDraft.id)).scalar_subquery()))
    assert flagged() == [made["a"].study_uid]
    with any_db.engine.begin() as conn:  # the other moved to study B
        b_id = conn.execute(select(Study.id).where(Study.study_uid == made["b"].study_uid)).scalar_one()
        conn.execute(update(AiDraft).values(study_db_id=b_id))
    assert flagged() == [made["b"].study_uid]
    with any_db.engine.begin() as conn:
        conn.execute(delete(AiDraft))
    assert flagged() == []


def _patient(s: Any, pid: int, name: str, patient_id: str, accession: str) -> None:
    from app.importer.service import name_search_text

    s.add(Patient(id=pid, patient_key=f"k{pid}", patient_id=patient_id, name=name, name_search=name_search_text(name)))
    s.add(Study(study_uid=f"1.2.{pid}", patient_db_id=pid, accession=accession, study_date=date(2024, 1, pid),
                study_time="", description="", referring_physician="", modalities="CR", report_status="none"))


def test_name_id_and_accession_search_by_word_prefix(any_db: Database) -> None:
    with any_db.session() as s:
        _patient(s, 1, "SMITH-JONES^ANNA^MARIA", "P-0001", "ACC-200")
        _patient(s, 2, "JONESCU^JOHN", "p0002", "acc_201")
        _patient(s, 3, 'O"BRIEN\\X^J%', "Q300", "XY-300")
        _patient(s, 4, "MÜLLER^JÜRGEN", "Q301", "xy-301")

    def found(**kw: Any) -> list[str]:
        with any_db.session() as s:
            return sorted(r.study_uid.rsplit(".", 1)[1] for r in search_studies(s, **kw))

    assert found(name="jones") == ["1", "2"]  # word prefixes, hyphenated names split
    assert found(name="anna smith") == ["1"]  # any order
    assert found(name="smith-jo") == ["1"]
    assert found(name="jones john") == ["2"]
    assert found(name="ones") == []  # not inside a word...
    assert found(name="*ones") == ["1", "2"]  # ...unless asked for with a wildcard
    assert found(name="j?h*") == ["2"]
    assert found(name='o"brien\\x') == ["3"] and found(name="j%") == ["3"]  # quotes, backslash, LIKE characters
    assert found(name="j_") == []
    assert found(name="müll jür") == ["4"]  # not only ASCII
    assert found(patient_id="p-0") == ["1"] and found(patient_id="P0") == ["2"]
    assert found(patient_id="q3") == ["3", "4"] and found(patient_id="*01") == ["1", "4"]
    assert found(accession="ACC") == ["1", "2"] and found(accession="acc_") == ["2"]
    assert found(accession="acc%") == [] and found(accession="XY-30") == ["3", "4"]
    with any_db.session() as s:  # a corrected name is found by its new words only
        s.execute(update(Patient).where(Patient.id == 2).values(name="DOE^JOHN", name_search="DOE JOHN"))
    assert found(name="jonescu") == [] and found(name="doe") == ["2"]
    with any_db.engine.begin() as conn:  # words go with their patient
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        conn.execute(delete(Study).where(Study.patient_db_id == 2))
        conn.execute(delete(Patient).where(Patient.id == 2))
        assert conn.execute(select(func.count()).select_from(PatientNameWord)
                            .where(PatientNameWord.patient_db_id == 2)).scalar() == 0


def test_modality_filter_common_and_rare(any_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both plans of the modality filter (series index for a rare modality, study row for a common one)."""
    import app.db.queries as queries

    made = _import(any_db, tmp_path)  # CT studies
    with any_db.session() as s:
        b = s.scalars(select(Study).where(Study.study_uid == made["b"].study_uid)).one()
        s.add(Series(series_uid="1.2.3.44", study=b, modality="SR"))
        b.modalities = "CT\\SR"
    for threshold in (5000, 1):
        monkeypatch.setattr(queries, "COMMON_MODALITY_SERIES", threshold)
        with any_db.session() as s:
            assert {r.study_uid for r in search_studies(s, modality="ct")} == {made["a"].study_uid, made["b"].study_uid}
            assert [r.study_uid for r in search_studies(s, modality="SR")] == [made["b"].study_uid]
            assert search_studies(s, modality="S") == [] and search_studies(s, modality="%") == []
