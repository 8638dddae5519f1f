"""The signed PDF as a DICOM Encapsulated PDF instance (Modality DOC), for PACS that show documents."""

from __future__ import annotations

import datetime as dt

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, EncapsulatedPDFStorage, ExplicitVRLittleEndian

from app.reports.document import ReportDocument
from app.reports.identity_attributes import identity_attributes


def build_encapsulated_pdf(doc: ReportDocument, pdf: bytes) -> Dataset:
    v = doc.version
    when = dt.datetime.fromisoformat(v.signed_at).astimezone(dt.UTC) if v.signed_at else dt.datetime.now(dt.UTC)
    sop_uid = doc.uid("encapsulated-pdf")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = EncapsulatedPDFStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = EncapsulatedPDFStorage
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = when.strftime("%Y%m%d")
    ds.InstanceCreationTime = when.strftime("%H%M%S")
    identity_attributes(doc, ds)  # Patient / General Study
    # Encapsulated Document Series
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = doc.uid("encapsulated-pdf-series")
    ds.SeriesNumber = 901
    ds.SeriesDescription = "Radiology report (PDF)"
    # General Equipment / SC Equipment
    ds.Manufacturer = "RadStation"
    ds.ConversionType = "WSD"
    # Encapsulated Document
    ds.InstanceNumber = v.version_no
    ds.ContentDate = when.strftime("%Y%m%d")
    ds.ContentTime = when.strftime("%H%M%S")
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = f"{doc.title} report v{v.version_no}"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "18748-4", "LN", "Diagnostic Imaging Report"
    ds.ConceptNameCodeSequence = [code]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf
    ds.EncapsulatedDocumentLength = len(pdf)  # the OB value is padded to even length
    if doc.signed:
        ds.VerificationFlag = "VERIFIED"
    return ds


def extract_pdf(ds: Dataset) -> bytes:
    if ds.get("MIMETypeOfEncapsulatedDocument") != "application/pdf":
        raise ValueError("not an encapsulated PDF")
    data = bytes(ds.EncapsulatedDocument)
    n = ds.get("EncapsulatedDocumentLength")
    if n:
        return data[: int(n)]
    return data[:-1] if data.endswith(b"\0") else data
