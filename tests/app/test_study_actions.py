"""Worklist row actions without a window: anonymised export, prior lookup, delete (never a reported study)."""

from __future__ import annotations

from datetime import date

import pydicom
import pytest

from app.importer import ImportService
from app.study_actions import StudyActionError, delete_study, export_study, load_study, prior_study_uid
from tests.support.synthetic_dicom import SyntheticStudy, write_series


def _import(db, tmp_path):
    for i, day in enumerate((date(2024, 3, 1), date(2025, 3, 1))):
        write_series(tmp_path / "src" / str(i), SyntheticStudy("DOE^JOHN", "P100", day, f"ACC-{i}", "CT CHEST", "CT"), 2)
    ImportService(db).run([tmp_path / "src"])
    with db.session() as s:
        from sqlalchemy import select

        from app.db.models import Study

        return [u for (u,) in s.execute(select(Study.study_uid).order_by(Study.study_date))]


def test_anonymised_export_prior_and_delete(db, tmp_path):
    old, new = _import(db, tmp_path)
    assert prior_study_uid(db, new) == old and prior_study_uid(db, old) is None
    result = export_study(load_study(db, new), tmp_path / "out", anonymised=True, salt="site-secret")
    files = sorted(result.folder.rglob("*.dcm"))
    assert result.written == len(files) == 2
    a, b = (pydicom.dcmread(f) for f in files)
    assert a.PatientName == "ANONYMOUS" and a.PatientID == "" and "StudyDate" not in a
    assert a.StudyInstanceUID == b.StudyInstanceUID != new  # consistent new UIDs keep the study together
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    plain = export_study(load_study(db, new), tmp_path / "plain")
    assert pydicom.dcmread(next(plain.folder.rglob("*.dcm"))).PatientName == "DOE^JOHN"
    stopped = export_study(load_study(db, new), tmp_path / "cancel", cancelled=lambda: True)
    assert stopped.cancelled and stopped.written == 0

    from app.reports.models import Report

    with db.session() as s:
        s.add(Report(study_uid=old, exam_type="ct_chest"))
    with pytest.raises(StudyActionError, match="report"):
        delete_study(db, old)
    paths = [p for s in load_study(db, new).series for p in s.paths]
    assert delete_study(db, new) == 2 and not any(p.exists() for p in paths)
    with pytest.raises(StudyActionError):
        delete_study(db, new)


def test_exports_and_deletes_are_audited_with_the_patient(db, tmp_path):
    """Images leaving the workstation (plain or anonymised, even a cancelled export) and a deletion are in the
    audit log with the study and the patient, read before the rows were gone."""
    import json

    from sqlalchemy import select

    from app.reports.models import AuditEntry

    old, new = _import(db, tmp_path)
    export_study(load_study(db, new), tmp_path / "out", anonymised=True, salt="s", database=db)
    export_study(load_study(db, new), tmp_path / "none", cancelled=lambda: True, database=db)  # nothing left
    delete_study(db, old)
    with db.session() as s:
        rows = [(e.action, e.object_id, json.loads(e.details)) for e in s.scalars(select(AuditEntry))]
    exports = [r for r in rows if r[0] == "export"]
    assert len(exports) == 1 and exports[0][1] == new
    assert exports[0][2]["patient_id"] == "P100" and "anonymised" in exports[0][2]["what"]
    assert str(tmp_path / "out") in exports[0][2]["target"]
    (deleted,) = [r for r in rows if r[0] == "delete"]
    assert deleted[1] == old and deleted[2]["patient_id"] == "P100" and deleted[2]["files_removed"] == 2
