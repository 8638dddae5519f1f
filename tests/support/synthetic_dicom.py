"""Small, valid synthetic DICOM instances: what the import tests, the import benchmark and the screenshot
scripts feed the pipeline (test support, not shipped: the product never generates studies).

Real CT Image Storage objects (tiny pixel matrices) with a consistent patient/study/series hierarchy,
so they exercise exactly the code paths real files take.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid


@dataclass
class SyntheticStudy:
    """Identity shared by every instance of one study."""

    patient_name: str = "TEST^PATIENT"
    patient_id: str = "P0001"
    study_date: date = date(2024, 1, 2)
    accession: str = "ACC0001"
    description: str = "CT CHEST"
    modality: str = "CT"
    study_uid: str = field(default_factory=generate_uid)
    frame_of_reference_uid: str = field(default_factory=generate_uid)


def make_instance(
    study: SyntheticStudy,
    series_uid: str,
    *,
    instance_number: int = 1,
    series_number: int = 1,
    z: float | None = None,
    size: int = 8,
    sop_uid: str | None = None,
) -> Dataset:
    """One CT slice of `size`x`size` 16-bit pixels at height `z` (default: the instance number)."""
    sop_uid = sop_uid or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.StudyDate = study.study_date.strftime("%Y%m%d")
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.AccessionNumber = study.accession
    ds.StudyDescription = study.description
    ds.Modality = study.modality
    ds.SeriesNumber = series_number
    ds.SeriesDescription = f"series {series_number}"
    ds.InstanceNumber = instance_number
    ds.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.ImagePositionPatient = [0.0, 0.0, float(instance_number if z is None else z)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 1.0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    pixels = (np.arange(size * size, dtype=np.int16).reshape(size, size) + instance_number).astype(np.int16)
    ds.PixelData = pixels.tobytes()
    return ds


def write_series(
    folder: Path, study: SyntheticStudy, count: int, *, series_number: int = 1, series_uid: str | None = None
) -> list[Path]:
    """Write `count` slices of one series as folder/<n>.dcm; returns the paths."""
    series_uid = series_uid or generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(1, count + 1):
        ds = make_instance(study, series_uid, instance_number=n, series_number=series_number)
        path = folder / f"s{series_number:03d}_{n:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
