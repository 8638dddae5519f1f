"""Builders for the DICOM objects RadStation creates itself: the bundled demo studies, benchmark series
and test fixtures. They fill the mandatory modules of each IOD so the files pass dciodvfy, and derive
UIDs from a seed so that rebuilding gives byte-identical files (no git churn).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

__all__ = [
    "CT_IMAGE_STORAGE",
    "DX_PRESENTATION_STORAGE",
    "StudyInfo",
    "ct_slice_dataset",
    "dx_dataset",
    "save",
    "uid_from",
]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
MANUFACTURER = "RadStation"
_UID_NAMESPACE = uuid.UUID("6f1d2b1e-8d0c-5a53-9a43-52616453746e")


def uid_from(seed: str, *parts: object) -> str:
    """A valid, stable UID derived from `seed` and `parts`: the 2.25 form of a name-based (v5) UUID,
    so the same inputs always give the same UID and different inputs practically never collide."""
    name = "\x1f".join([seed, *(str(p) for p in parts)])
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"


@dataclass(frozen=True)
class StudyInfo:
    """Patient and study attributes shared by every instance of a generated study."""

    study_uid: str
    patient_name: str = "DEMO^PATIENT"
    patient_id: str = "DEMO0001"
    patient_birth_date: str = ""
    patient_sex: str = "O"
    patient_age: str = ""
    study_date: str = "20240101"
    study_time: str = "090000"
    accession: str = ""
    study_id: str = "1"
    description: str = ""
    referring: str = ""


def _base(sop_class: str, sop_uid: str, study: StudyInfo, series_uid: str, modality: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta.ImplementationVersionName = "RADSTATION_01"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = study.study_date
    ds.SeriesDate = study.study_date
    ds.ContentDate = study.study_date
    ds.StudyTime = study.study_time
    ds.SeriesTime = study.study_time
    ds.ContentTime = study.study_time
    ds.AccessionNumber = study.accession
    ds.Modality = modality
    ds.Manufacturer = MANUFACTURER
    ds.ReferringPhysicianName = study.referring
    ds.StudyDescription = study.description
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = study.patient_birth_date
    ds.PatientSex = study.patient_sex
    if study.patient_age:
        ds.PatientAge = study.patient_age
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = study.study_id
    return ds


def _pixels(ds: Dataset, pixels: np.ndarray, bits_stored: int) -> None:
    ds.SamplesPerPixel = 1
    ds.Rows, ds.Columns = (int(v) for v in pixels.shape)
    ds.BitsAllocated = 8 * pixels.dtype.itemsize
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()


def ct_slice_dataset(
    stored: np.ndarray,
    *,
    study: StudyInfo,
    series_uid: str,
    sop_uid: str,
    frame_of_reference_uid: str,
    instance_number: int,
    position: Sequence[float],
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    slice_thickness: float = 1.0,
    rescale_intercept: float = -1024.0,
    rescale_slope: float = 1.0,
    window: tuple[float, float] | None = (40.0, 400.0),
    series_number: int = 1,
    series_description: str = "",
    bits_stored: int = 12,
) -> Dataset:
    """One CT Image Storage slice holding `stored` (uint16/int16 stored values)."""
    ds = _base(CT_IMAGE_STORAGE, sop_uid, study, series_uid, "CT")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.InstanceNumber = instance_number
    ds.AcquisitionNumber = 1
    ds.PatientOrientation = ""
    ds.BodyPartExamined = "CHEST"
    ds.KVP = 120
    ds.ImagePositionPatient = [f"{float(v):.6g}" for v in position]
    ds.ImageOrientationPatient = [f"{float(v):.6g}" for v in orientation]
    ds.PixelSpacing = [f"{float(v):.6g}" for v in pixel_spacing]
    ds.SliceThickness = f"{float(slice_thickness):.6g}"
    normal = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:], float))
    ds.SliceLocation = f"{float(np.dot(np.asarray(position, float), normal)):.6g}"
    ds.PhotometricInterpretation = "MONOCHROME2"
    _pixels(ds, stored, bits_stored)
    ds.RescaleIntercept = f"{rescale_intercept:.6g}"
    ds.RescaleSlope = f"{rescale_slope:.6g}"
    ds.RescaleType = "HU"
    if window is not None:
        ds.WindowCenter = f"{window[0]:.6g}"
        ds.WindowWidth = f"{window[1]:.6g}"
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def dx_dataset(
    pixels: np.ndarray,
    *,
    study: StudyInfo,
    series_uid: str,
    sop_uid: str,
    imager_pixel_spacing: tuple[float, float],
    view_position: str = "PA",
    bits_stored: int | None = None,
    window: tuple[float, float] | None = None,
    series_number: int = 1,
    series_description: str = "",
    derivation: str = "",
    comments: str = "",
    body_part: str = "CHEST",
) -> Dataset:
    """A Digital X-Ray Image Storage - For Presentation object (MONOCHROME2) holding `pixels`."""
    ds = _base(DX_PRESENTATION_STORAGE, sop_uid, study, series_uid, "DX")
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.InstanceNumber = 1
    # displayed in the conventional orientation: patient's right on the viewer's left, head up
    ds.PatientOrientation = ["L", "F"]
    ds.ImageLaterality = "U"
    ds.BodyPartExamined = body_part
    ds.ViewPosition = view_position
    ds.AnatomicRegionSequence = DicomSequence([_code("816094009", "SCT", "Chest")])
    view = ("399348003", "antero-posterior") if view_position == "AP" else ("272479007", "postero-anterior")
    ds.ViewCodeSequence = DicomSequence([_code(view[0], "SCT", view[1])])
    ds.ViewCodeSequence[0].ViewModifierCodeSequence = DicomSequence()
    ds.PositionerType = "NONE"
    ds.AcquisitionContextSequence = DicomSequence()
    ds.PhotometricInterpretation = "MONOCHROME2"
    bits = bits_stored or 8 * pixels.dtype.itemsize
    _pixels(ds, pixels, bits)
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    ds.ImagerPixelSpacing = [f"{float(v):.6g}" for v in imager_pixel_spacing]
    ds.DetectorType = "DIRECT"
    if window is None:
        top = float(2**bits - 1)
        window = (top / 2.0 + 0.5, top + 1.0)
    ds.WindowCenter = f"{window[0]:.6g}"
    ds.WindowWidth = f"{window[1]:.6g}"
    ds.WindowCenterWidthExplanation = "DEFAULT"
    if derivation:
        ds.DerivationDescription = derivation[:1024]
    if comments:
        ds.ImageComments = comments[:10240]
    return ds


def save(ds: Dataset, path: str | Path) -> Path:
    """Write `ds` as a DICOM Part 10 file (preamble and meta header) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
