"""Worklist search and the StudyRef handed to the viewer."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from app.db.database import Database
from app.db.models import AiDraft, Study
from app.db.queries import StudyNotFound, search_studies, study_ref
from app.importer import ImportService
from tests.support.synthetic_dicom import SyntheticStudy, make_instance, write_series


@pytest.fixture
def studies(db: Database, tmp_path: Path) -> dict[str, SyntheticStudy]:
    made = {
        "doe": SyntheticStudy("DOE^JOHN", "P100", date(2024, 3, 1), "ACC-100", "CT CHEST", "CT"),
        "roe": SyntheticStudy("ROE^JANE", "P200", date(2023, 6, 15), "ACC-200", "MR BRAIN", "MR"),
        "smith": SyntheticStudy("SMITH^ANNA", "Q300", date(2022, 1, 10), "XY-300", "CHEST PA", "DX"),
    }
    for key, study in made.items():
        write_series(tmp_path / "src" / key, study, 2 if key != "doe" else 3)
    write_series(tmp_path / "src" / "doe2", made["doe"], 1, series_number=2)
    assert ImportService(db).run([tmp_path / "src"]).imported == 8
    return made


def _uids(rows) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.study_uid for r in rows]


def test_search_filters(db: Database, studies: dict[str, SyntheticStudy]) -> None:
    doe, roe, smith = studies["doe"].study_uid, studies["roe"].study_uid, studies["smith"].study_uid
    with db.session() as s:
        assert _uids(search_studies(s)) == [doe, roe, smith]  # newest first
        assert _uids(search_studies(s, name="john doe")) == [doe]
        assert _uids(search_studies(s, name="jan")) == [roe]
        assert _uids(search_studies(s, patient_id="P")) == [doe, roe]
        assert _uids(search_studies(s, patient_id="q3*")) == [smith]
        assert _uids(search_studies(s, accession="acc-2")) == [roe]
        assert _uids(search_studies(s, date_from="2023-01-01")) == [doe, roe]
        assert _uids(search_studies(s, date_from=date(2023, 1, 1), date_to="20231231")) == [roe]
        assert _uids(search_studies(s, modality="dx")) == [smith]
        assert _uids(search_studies(s, name="nobody")) == []
        assert _uids(search_studies(s, name="100%")) == []  # LIKE characters are literal
        row = search_studies(s, name="doe")[0]
        assert (row.series_count, row.instance_count, row.report_status, row.has_ai_draft) == (2, 4, "none", False)
        assert row.patient_name == "DOE^JOHN" and row.modalities == "CT" and row.study_date == date(2024, 3, 1)


def test_search_sorting_and_limit(db: Database, studies: dict[str, SyntheticStudy]) -> None:
    with db.session() as s:
        names = [r.patient_name for r in search_studies(s, sort="name")]
        assert names == ["DOE^JOHN", "ROE^JANE", "SMITH^ANNA"]
        assert [r.instance_count for r in search_studies(s, sort="-images")] == [4, 2, 2]
        assert [r.study_date.year for r in search_studies(s, sort="date")] == [2022, 2023, 2024]
        assert len(search_studies(s, limit=2)) == 2
        with pytest.raises(ValueError, match="unknown sort key"):
            search_studies(s, sort="shoe size")
        with pytest.raises(ValueError, match="not a date"):
            search_studies(s, date_from="last tuesday")


def test_report_status_and_ai_draft_show_in_rows(db: Database, studies: dict[str, SyntheticStudy]) -> None:
    with db.session() as s:
        study = s.scalar(select(Study).where(Study.study_uid == studies["roe"].study_uid))
        assert study is not None
        study.report_status = "final"
        s.add(AiDraft(study_db_id=study.id, engine="diffusion", findings="normal"))
    with db.session() as s:
        row = search_studies(s, name="roe")[0]
        assert row.report_status == "final" and row.has_ai_draft
        assert _uids(search_studies(s, sort="-ai_draft"))[0] == studies["roe"].study_uid


def test_study_ref_orders_series_and_instances(db: Database, tmp_path: Path) -> None:
    study = SyntheticStudy("ORDER^TEST", "ORD")
    s1, s2 = generate_uid(), generate_uid()
    folder = tmp_path / "order"
    folder.mkdir()
    # Series 2 written first; instance numbers shuffled; two slices share number 5 and differ by z.
    specs = [(s2, 2, 1, None), (s1, 1, 3, None), (s1, 1, 1, None), (s1, 1, 2, None),
             (s1, 1, 5, 40.0), (s1, 1, 5, 20.0)]
    for i, (series, number, inst, z) in enumerate(specs):
        ds = make_instance(study, series, instance_number=inst, series_number=number, z=z)
        ds.save_as(folder / f"f{i}.dcm", enforce_file_format=True)
    assert ImportService(db).run([folder]).imported == 6
    with db.session() as s:
        ref = study_ref(s, study.study_uid)
    assert [x.number for x in ref.series] == [1, 2]
    assert ref.patient_name == "ORDER^TEST" and ref.study_date == "20240102"
    import pydicom

    first = [pydicom.dcmread(p) for p in ref.series[0].paths]
    assert [(d.InstanceNumber, d.ImagePositionPatient[2]) for d in first] == [
        (1, 1.0), (2, 2.0), (3, 3.0), (5, 20.0), (5, 40.0)
    ]
    assert all(p.is_file() and db.store_dir in p.parents for p in ref.series[0].paths)


def test_study_ref_unknown_study(db: Database) -> None:
    with db.session() as s, pytest.raises(StudyNotFound):
        study_ref(s, "1.2.3.4")


def test_study_ref_reads_a_study_in_a_fixed_number_of_queries(db: Database, tmp_path: Path) -> None:
    """Opening a study runs `study_ref` on the GUI thread: no lazy query per series (before: 1 + series)."""
    from sqlalchemy import event

    study = SyntheticStudy("MANY^SERIES", "MS1")
    for number in range(1, 7):
        write_series(tmp_path / "src" / f"s{number}", study, 2, series_number=number)
    assert ImportService(db).run([tmp_path / "src"]).imported == 12
    selects: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001, ANN002
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.session() as s:
            ref = study_ref(s, study.study_uid)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(ref.series) == 6 and all(len(r.paths) == 2 for r in ref.series)
    assert ref.patient_name == "MANY^SERIES"
    assert len(selects) <= 3, selects
