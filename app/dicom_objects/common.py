"""What every RadStation-written DICOM object shares: equipment identity, UIDs, names, image references."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import metadata

from pydicom.dataset import Dataset

MANUFACTURER = "RadStation"
MODEL_NAME = "RadStation workstation"
DEVICE_SERIAL = "0"


def software_version() -> str:
    try:
        return metadata.version("radstation")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "0.1.0"


def stable_uid(*parts: str) -> str:
    """A '2.25.' UID from `parts`: the same inputs give the same UID, so re-exports replace, never duplicate."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


@dataclass(frozen=True)
class ImageRef:
    """Enough of an image to reference it from another object (what highdicom reads off a source dataset)."""

    study_uid: str
    series_uid: str
    sop_class_uid: str
    sop_instance_uid: str

    @classmethod
    def of(cls, ds: Dataset) -> ImageRef:
        missing = [k for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID")
                   if not ds.get(k)]
        if missing:
            raise ValueError(f"the image has no {', '.join(missing)}; it cannot be referenced")
        return cls(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPClassUID),
                   str(ds.SOPInstanceUID))


PATIENT_STUDY_KEYWORDS = (
    "SpecificCharacterSet", "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName",
    "StudyDescription",
)


# what highdicom's image library (TID 1601) describes an image by
IMAGE_KEYWORDS = (
    "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID", "Modality", "Rows", "Columns", "NumberOfFrames",
    "PixelSpacing", "ImagerPixelSpacing", "FrameOfReferenceUID", "ImageOrientationPatient", "ImagePositionPatient",
    "SliceThickness", "PatientOrientation", "ImageLaterality", "Laterality", "ViewPosition", "ContentDate",
    "ContentTime", "AcquisitionDate", "AcquisitionTime", "SamplesPerPixel", "PhotometricInterpretation",
    "BodyPartExamined", "ImageType", "SeriesDescription",
)


def header_of(ds: Dataset) -> Dataset:
    """Patient, study and series identity of `ds` without its pixels: what highdicom needs as evidence."""
    out = Dataset()
    for kw in PATIENT_STUDY_KEYWORDS + IMAGE_KEYWORDS:
        if kw in ds:
            out[kw] = ds[kw]
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
               "AccessionNumber", "ReferringPhysicianName", "StudyID"):
        if kw not in out:
            setattr(out, kw, "")
    return out


def person_name(name: str) -> str:
    """DICOM PN from a display name: 'Dr Jane Doe' -> 'Doe^Jane^^Dr' (best effort, never empty)."""
    parts = [p for p in name.replace("^", " ").split() if p]
    prefix = ""
    if parts and parts[0].rstrip(".").lower() in ("dr", "prof", "mr", "mrs", "ms"):
        prefix = parts.pop(0)
    if not parts:
        return prefix or "Unknown"
    if len(parts) == 1:
        return f"{parts[0]}^^^{prefix}" if prefix else parts[0]
    return f"{parts[-1]}^{' '.join(parts[:-1])}^^{prefix}".rstrip("^")


def copy_study_extras(target: Dataset, source: Dataset) -> None:
    """Study attributes highdicom leaves out but a PACS lists the object by (description, issuer)."""
    for kw in ("StudyDescription", "IssuerOfPatientID"):
        if kw in source and kw not in target:
            target[kw] = source[kw]
