"""What the worklist's row menu does to a whole study: export (plain or anonymised), delete, find its prior.

Qt-free so each action is tested without a window; the GUI runs them on a worker thread with progress
and Cancel. Anonymisation follows the DICOM PS3.15 Basic Application Level Confidentiality Profile for the
attributes a workstation export carries (identifying text replaced or removed, dates removed, private tags
dropped, UIDs replaced consistently so series and references still hang together), and marks the file
with PatientIdentityRemoved = YES and the method used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import select

from app.db.models import Instance, Patient, Series, Study
from app.db.queries import study_ref
from app.export_files import copy_private, save_dataset_private
from app.paths import private_dir
from viewer.io.refs import StudyRef

Progress = Callable[[int, int], None]

# Attributes replaced by an empty or dummy value (type 1/2 keep a value, the rest are removed).
_REPLACE = {"PatientName": "ANONYMOUS", "PatientID": "", "AccessionNumber": "", "StudyID": "",
            "ReferringPhysicianName": "", "InstitutionName": "", "StationName": ""}
_REMOVE = ("PatientBirthDate", "PatientBirthTime", "PatientAddress", "PatientTelephoneNumbers",
           "OtherPatientIDs", "OtherPatientNames", "OtherPatientIDsSequence", "PatientMotherBirthName",
           "MilitaryRank", "EthnicGroup", "PatientReligiousPreference", "MedicalRecordLocator", "IssuerOfPatientID",
           "InstitutionAddress", "InstitutionalDepartmentName", "PerformingPhysicianName",
           "NameOfPhysiciansReadingStudy", "OperatorsName", "PhysiciansOfRecord", "RequestingPhysician",
           "AdmittingDiagnosesDescription", "AdditionalPatientHistory", "PatientComments", "ImageComments",
           "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "StudyTime", "SeriesTime",
           "AcquisitionTime", "ContentTime", "AcquisitionDateTime", "InstanceCreationDate", "InstanceCreationTime",
           "DeviceSerialNumber", "RequestAttributesSequence", "ReferencedPatientSequence", "PatientAge",
           "PatientSize", "PatientWeight", "Occupation", "CountryOfResidence", "RegionOfResidence",
           "CurrentPatientLocation", "FrameOfReferenceUID")
_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "ReferencedSOPInstanceUID",
         "MediaStorageSOPInstanceUID")


class StudyActionError(RuntimeError):
    """A study action that cannot be done (the message says why)."""


@dataclass(frozen=True)
class ExportResult:
    written: int
    folder: Path
    cancelled: bool = False


def _new_uid(old: str, salt: str) -> str:
    digest = hashlib.sha256(f"{salt}|{old}".encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def anonymise(ds: Dataset, salt: str, pseudonym: str = "ANONYMOUS") -> Dataset:
    """Remove identifying attributes in place (see the module doc); the same `salt` maps a UID the same way."""
    ds.remove_private_tags()
    for keyword, value in _REPLACE.items():
        if keyword in ds:
            setattr(ds, keyword, pseudonym if keyword == "PatientName" else value)
    for keyword in _REMOVE:
        if keyword in ds:
            delattr(ds, keyword)

    def fix_uids(d: Dataset) -> None:
        for elem in d:
            if elem.VR == "SQ":
                for item in elem.value:
                    fix_uids(item)
            elif elem.keyword in _UIDS and elem.value:
                elem.value = _new_uid(str(elem.value), salt)

    fix_uids(ds)
    if getattr(ds, "file_meta", None) is not None and "MediaStorageSOPInstanceUID" in ds.file_meta:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "RadStation: PS3.15 Basic Application Confidentiality Profile"
    return ds


def load_study(database, study_uid: str) -> StudyRef:
    with database.session() as s:
        return study_ref(s, study_uid, images_only=False)


def export_study(study: StudyRef, folder: Path, *, anonymised: bool = False, salt: str = "",
                 progress: Progress | None = None, cancelled: Callable[[], bool] = lambda: False,
                 database=None) -> ExportResult:
    """Copy (or anonymise) every file of `study` into `folder/<study>/<series>/IMnnnnn.dcm`; with `database`,
    what left the workstation (even a partial, cancelled or failed export) is in its audit log."""
    done = {"written": 0, "folder": folder}
    try:
        return _export_files(study, folder, anonymised, salt, progress, cancelled, done)
    finally:
        if database is not None and done["written"]:
            from app import access_audit

            what = f"{done['written']} image file(s){' anonymised' if anonymised else ''}"
            access_audit.exported(database, study.study_uid, what, str(done["folder"]))


def _export_files(study: StudyRef, folder: Path, anonymised: bool, salt: str, progress: Progress | None,
                  cancelled: Callable[[], bool], done: dict) -> ExportResult:
    files = [(series, path) for series in study.series for path in series.paths]
    if not files:
        raise StudyActionError("the study has no files to export")
    base = folder / (_new_uid(study.study_uid, salt)[-12:] if anonymised else _safe(study.study_uid))
    done["folder"] = base
    written = 0
    for n, (series, path) in enumerate(files):
        if cancelled():
            return ExportResult(written, base, cancelled=True)
        if not path.exists():
            raise StudyActionError(f"file missing from the store: {path}")
        sub = base / (f"S{series.number or 0:03d}_{_new_uid(series.series_uid, salt)[-8:]}" if anonymised
                      else f"S{series.number or 0:03d}_{_safe(series.series_uid)[-16:]}")
        private_dir(sub, tighten=False)
        target = sub / f"IM{n:05d}.dcm"
        if anonymised:
            save_dataset_private(anonymise(pydicom.dcmread(path), salt or study.study_uid), target)
        else:
            copy_private(path, target)
        written += 1
        done["written"] = written
        if progress is not None:
            progress(n + 1, len(files))
    return ExportResult(written, base)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in text)


def prior_study_uid(database, study_uid: str) -> str | None:
    """The same patient's most recent study before this one (by study date), or None."""
    with database.session() as s:
        study = s.scalar(select(Study).where(Study.study_uid == study_uid))
        if study is None:
            return None
        stmt = select(Study.study_uid).where(Study.patient_db_id == study.patient_db_id, Study.id != study.id)
        if study.study_date is not None:
            stmt = stmt.where(Study.study_date < study.study_date)
        return s.scalar(stmt.order_by(Study.study_date.desc()).limit(1))


def hanging_inputs(database, study_uid: str) -> tuple[list[StudyRef], tuple[str, ...]]:
    """What a hanging protocol is chosen by, read off the GUI thread: the prior (as a list, empty when the
    patient has none here) and the study's body parts."""
    from app.reports.exam import exam_info

    prior_uid = prior_study_uid(database, study_uid)
    priors = [load_study(database, prior_uid)] if prior_uid else []
    return priors, exam_info(database, study_uid).body_parts


def delete_study(database, study_uid: str) -> int:
    """Remove a study and its files from this workstation; a study with a report is never deleted.
    Returns the number of files removed."""
    from app import access_audit
    from app.reports.models import Report

    def remove_rows(s) -> tuple[list[str], dict]:
        study = s.scalar(select(Study).where(Study.study_uid == study_uid))
        if study is None:
            raise StudyActionError(f"study {study_uid} is not in the database")
        if s.scalar(select(Report.id).where(Report.study_uid == study_uid).limit(1)) is not None:
            raise StudyActionError("this study has a report; reports are kept, so the study is not deleted")
        rel = list(s.scalars(select(Instance.file_path).join(Instance.series).where(Series.study_db_id == study.id)))
        patient_id = study.patient_db_id
        whose = access_audit.patient_of(s, study_uid)  # read before the rows go
        s.delete(study)
        s.flush()
        if s.scalar(select(Study.id).where(Study.patient_db_id == patient_id).limit(1)) is None:
            patient = s.get(Patient, patient_id)
            if patient is not None:
                s.delete(patient)
        return rel, whose

    # one write transaction from the first read, so an import committing in between cannot make it fail
    rel, whose = database.run_write(remove_rows)
    removed = 0
    for r in rel:
        path = Path(database.store_dir).joinpath(*r.split("/"))
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    access_audit.record(database, "delete", "study", study_uid,
                        {**whose, "study_uid": study_uid, "instances": len(rel), "files_removed": removed})
    return removed
