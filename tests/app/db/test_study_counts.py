"""Series/instance counts kept by the database (migration 0007_study_counts), on SQLite and PostgreSQL
(the `db` fixture runs each test on both; see tests/app/conftest.py).

Each test changes the hierarchy the way some writer could (the importer, the ORM deleting a study, raw SQL
deleting a series and letting the foreign keys cascade, rows moved between parents) and compares the kept
counts with counts taken from the rows themselves.
"""

from __future__ import annotations

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
from tests.support.postgres_fixture import database_url
from tests.support.synthetic_dicom import SyntheticStudy, write_series

PREVIOUS = "0006_import_integrity"  # the revision 0007_study_counts follows
TRUTH = """
SELECT st.study_uid,
       (SELECT count(*) FROM series s WHERE s.study_db_id = st.id) AS series_n,
       (SELECT count(*) FROM instance i JOIN series s ON i.series_db_id = s.id WHERE s.study_db_id = st.id) AS inst_n,
       st.series_count, st.instance_count
FROM study st ORDER BY st.study_uid
"""


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


def test_import_keeps_counts(db: Database, tmp_path: Path) -> None:
    made = _import(db, tmp_path)
    assert sorted(_check(db)) == [(1, 4), (2, 5)]
    with db.session() as s:
        rows = {r.study_uid: r for r in search_studies(s)}
    assert (rows[made["a"].study_uid].series_count, rows[made["a"].study_uid].instance_count) == (2, 5)
    # A second import of the same files adds nothing and counts nothing twice.
    assert ImportService(db).run([tmp_path / "src"]).duplicates == 9
    assert sorted(_check(db)) == [(1, 4), (2, 5)]


def test_deletes_and_cascades_keep_counts(db: Database, tmp_path: Path) -> None:
    made = _import(db, tmp_path)
    with db.session() as s:  # one instance, by the ORM
        s.delete(s.scalars(select(Instance).limit(1)).one())
    _check(db)
    with db.engine.begin() as conn:  # a whole series by SQL: its instances go by ON DELETE CASCADE
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        conn.execute(delete(Series).where(Series.id == select(Series.id).order_by(Series.id).limit(1)
                                          .scalar_subquery()))
    _check(db)
    with db.session() as s:  # a study by the ORM (its series and instances by the relationship cascade)
        s.delete(s.scalars(select(Study).where(Study.study_uid == made["b"].study_uid)).one())
    assert len(_check(db)) == 1


def test_moves_between_parents_keep_counts(db: Database, tmp_path: Path) -> None:
    made = _import(db, tmp_path)
    with db.session() as s:
        a = s.scalars(select(Study).where(Study.study_uid == made["a"].study_uid)).one()
        b = s.scalars(select(Study).where(Study.study_uid == made["b"].study_uid)).one()
        a_series = s.scalars(select(Series).where(Series.study_db_id == a.id).order_by(Series.id)).all()
        b_series = s.scalars(select(Series).where(Series.study_db_id == b.id)).one()
        a_ids = [x.id for x in a_series]
        b_id, b_series_id = b.id, b_series.id
    with db.engine.begin() as conn:
        # two instances of A's first series into B's series, in one statement
        moved = select(Instance.id).where(Instance.series_db_id == a_ids[0]).order_by(Instance.id).limit(2)
        conn.execute(update(Instance).where(Instance.id.in_(moved)).values(series_db_id=b_series_id))
    assert sorted(_check(db)) == [(1, 6), (2, 3)]
    with db.engine.begin() as conn:  # A's second series (2 instances) into study B
        conn.execute(update(Series).where(Series.id == a_ids[1]).values(study_db_id=b_id))
    assert sorted(_check(db)) == [(1, 1), (2, 8)]
    with db.engine.begin() as conn:  # an update that changes nothing the counts depend on
        conn.execute(update(Series).values(description="renamed"))
    assert sorted(_check(db)) == [(1, 1), (2, 8)]


def test_migration_backfills_counts_of_existing_rows(home: Path, tmp_path: Path, db_backend: str,
                                                    request: pytest.FixtureRequest) -> None:
    """A database filled before 0006 gets its counts and name words on upgrade; downgrade/upgrade round-trips."""
    url = database_url(request, db_backend) or f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, PREVIOUS)
    old = Database(engine, home / "store")
    with engine.begin() as conn:  # rows as the previous revision holds them (no count columns yet)
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
    for target in ("head", PREVIOUS, "head"):
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            (command.upgrade if target == "head" else command.downgrade)(cfg, target)
    assert _check(old) == [(2, 7)]
    with old.session() as s:
        assert [r.patient_name for r in search_studies(s, name="y x")] == ["X^Y"]
    engine.dispose()


@pytest.mark.sqlite_only
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


def test_ai_draft_flag_follows_drafts(db: Database, tmp_path: Path) -> None:
    made = _import(db, tmp_path)
    with db.session() as s:
        a = s.scalars(select(Study).where(Study.study_uid == made["a"].study_uid)).one()
        s.add_all([AiDraft(study_db_id=a.id, engine="diffusion"), AiDraft(study_db_id=a.id, engine="diffusion")])

    def flagged() -> list[str]:
        with db.session() as s:
            return [r.study_uid for r in search_studies(s, sort="-ai_draft") if r.has_ai_draft]

    assert flagged() == [made["a"].study_uid]
    with db.engine.begin() as conn:  # one of two drafts deleted: still flagged
        conn.execute(delete(AiDraft).where(AiDraft.id == select(func.min(AiDraft.id)).scalar_subquery()))
    assert flagged() == [made["a"].study_uid]
    with db.engine.begin() as conn:  # the other moved to study B
        b_id = conn.execute(select(Study.id).where(Study.study_uid == made["b"].study_uid)).scalar_one()
        conn.execute(update(AiDraft).values(study_db_id=b_id))
    assert flagged() == [made["b"].study_uid]
    with db.engine.begin() as conn:
        conn.execute(delete(AiDraft))
    assert flagged() == []


def _patient(s: Any, pid: int, name: str, patient_id: str, accession: str) -> None:
    from app.importer.service import name_search_text

    s.add(Patient(id=pid, patient_key=f"k{pid}", patient_id=patient_id, name=name, name_search=name_search_text(name)))
    s.add(Study(study_uid=f"1.2.{pid}", patient_db_id=pid, accession=accession, study_date=date(2024, 1, pid),
                study_time="", description="", referring_physician="", modalities="CR", report_status="none"))


def test_name_id_and_accession_search_by_word_prefix(db: Database) -> None:
    with db.session() as s:
        _patient(s, 1, "SMITH-JONES^ANNA^MARIA", "P-0001", "ACC-200")
        _patient(s, 2, "JONESCU^JOHN", "p0002", "acc_201")
        _patient(s, 3, 'O"BRIEN\\X^J%', "Q300", "XY-300")
        _patient(s, 4, "MÜLLER^JÜRGEN", "Q301", "xy-301")

    def found(**kw: Any) -> list[str]:
        with db.session() as s:
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
    with db.session() as s:  # a corrected name is found by its new words only
        s.execute(update(Patient).where(Patient.id == 2).values(name="DOE^JOHN", name_search="DOE JOHN"))
    assert found(name="jonescu") == [] and found(name="doe") == ["2"]
    with db.engine.begin() as conn:  # words go with their patient
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        conn.execute(delete(Study).where(Study.patient_db_id == 2))
        conn.execute(delete(Patient).where(Patient.id == 2))
        assert conn.execute(select(func.count()).select_from(PatientNameWord)
                            .where(PatientNameWord.patient_db_id == 2)).scalar() == 0


def test_modality_filter_common_and_rare(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both plans of the modality filter (series index for a rare modality, study row for a common one)."""
    import app.db.queries as queries

    made = _import(db, tmp_path)  # CT studies
    with db.session() as s:
        b = s.scalars(select(Study).where(Study.study_uid == made["b"].study_uid)).one()
        s.add(Series(series_uid="1.2.3.44", study=b, modality="SR"))
        b.modalities = "CT\\SR"
    for threshold in (5000, 1):
        monkeypatch.setattr(queries, "COMMON_MODALITY_SERIES", threshold)
        with db.session() as s:
            assert {r.study_uid for r in search_studies(s, modality="ct")} == {made["a"].study_uid, made["b"].study_uid}
            assert [r.study_uid for r in search_studies(s, modality="SR")] == [made["b"].study_uid]
            assert search_studies(s, modality="S") == [] and search_studies(s, modality="%") == []
