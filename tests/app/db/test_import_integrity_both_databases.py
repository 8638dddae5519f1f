"""The import write path on both databases (SQLite and the real PostgreSQL): batch commits with the set-based
hierarchy lookup, a conflicting copy kept and flagged, a truncated object stored incomplete, flags listed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from app.db.database import Database
from app.db.models import Instance, InstanceConflict, Series, Study
from app.db.queries import search_studies
from app.importer import ImportService
from tests.support.synthetic_dicom import SyntheticStudy, make_instance, write_series


def test_import_batches_conflicts_and_flags(db: Database, tmp_path: Path) -> None:
    study = SyntheticStudy(patient_id="BOTH", modality="CT")
    write_series(tmp_path / "a", study, 5, series_number=1)
    write_series(tmp_path / "a", study, 4, series_number=2)
    for n in range(6):  # six more studies of one patient in one chunk: patients are not duplicated
        write_series(tmp_path / "a" / f"s{n}", SyntheticStudy(patient_id="OTHER"), 1)
    report = ImportService(db, commit_every=7).run([tmp_path / "a"])
    assert (report.imported, report.failed) == (15, 0), report.format_table()

    first = make_instance(study, generate_uid(), sop_uid=generate_uid())
    (tmp_path / "b").mkdir()
    first.save_as(tmp_path / "b" / "x.dcm", enforce_file_format=True)
    ImportService(db).run([tmp_path / "b"])
    first.PixelData = (np.frombuffer(first.PixelData, dtype=np.int16) + 1).astype(np.int16).tobytes()
    (tmp_path / "c").mkdir()
    first.save_as(tmp_path / "c" / "x.dcm", enforce_file_format=True)
    again = ImportService(db).run([tmp_path / "c"])
    assert again.imported == 1 and "kept beside it" in again.warnings[0].reason

    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == 16
        assert s.scalar(select(func.count()).select_from(InstanceConflict)) == 1
        assert s.scalar(select(func.count()).select_from(Series)) == 3 + 6
        assert s.scalar(select(func.count()).select_from(Study)) == 7
        assert s.scalar(select(Study.modalities).where(Study.study_uid == study.study_uid)) == "CT"
        rows = {r.patient_id: r for r in search_studies(s)}
    assert rows["BOTH"].attention == "conflicting copies" and rows["OTHER"].attention == ""
