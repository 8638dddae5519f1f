"""The patient and study attributes every DICOM object of a report carries (SR, encapsulated PDF, KOS, GSPS,
AI results, evidence references), in one place.

Written by hand in each exporter they drifted: the PDF and the SR evidence left Study ID empty while the KOS
gave the accession, and only some carried the issuer of the patient ID or the study description; a PACS that
groups a study's objects by these attributes then shows one study's report under two Study IDs.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from app.reports.document import ReportDocument

_SEXES = ("M", "F", "O")


def study_id(doc: ReportDocument) -> str:
    """Study ID (SH, 16 chars): the accession when it fits, else a stable short id of the study."""
    acc = doc.identity.accession
    return acc if acc and len(acc) <= 16 else doc.identity.study_uid.replace(".", "")[-16:]


def identity_attributes(doc: ReportDocument, ds: Dataset | None = None) -> Dataset:
    """Set the Patient and General Study attributes of the report's study on `ds` (a new data set when None);
    UTF-8 so no name or description is degraded to '?'."""
    ident = doc.identity
    ds = Dataset() if ds is None else ds
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientID = ident.patient_id
    ds.PatientName = ident.patient_name
    if ident.issuer:
        ds.IssuerOfPatientID = ident.issuer
    ds.PatientBirthDate = ident.patient_birth_date
    ds.PatientSex = ident.patient_sex if ident.patient_sex in _SEXES else ""
    ds.StudyInstanceUID = ident.study_uid
    ds.AccessionNumber = ident.accession
    ds.StudyID = study_id(doc)
    ds.StudyDate = ident.study_date
    ds.StudyTime = ident.study_time
    ds.ReferringPhysicianName = ident.referring_physician
    if ident.study_description:
        ds.StudyDescription = ident.study_description
    return ds
