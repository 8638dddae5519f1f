"""Tiny synthetic DICOM series for the widget tests (written with pydicom, a few KB each).

A uniquely named module (not conftest) so tests and scripts can import it whatever other conftest.py
files pytest has loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage, generate_uid

from viewer.io.refs import SeriesRef

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"


def _base(sop_class: str, modality: str, series_uid: str, number: int, desc: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PID-4711"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "F"
    ds.StudyDate = "20250102"
    ds.StudyDescription = "CT CHEST"
    ds.AccessionNumber = "ACC99"
    ds.SeriesNumber = number
    ds.SeriesDescription = desc
    return ds


def ct_pattern(rows: int, cols: int, k: int) -> np.ndarray:
    """HU pattern: air background, a soft-tissue block, a bright 'bone' square in the top-left
    quadrant (so flips and rotations are visible) and the slice index encoded in one row."""
    hu = np.full((rows, cols), -1000, dtype=np.int16)
    hu[rows // 8 : rows * 7 // 8, cols // 8 : cols * 7 // 8] = 40
    hu[rows // 8 : rows // 3, cols // 8 : cols // 3] = 1000
    hu[rows - 2, :] = 10 * k
    return hu


def write_ct_series(folder: Path, n: int = 5, rows: int = 64, cols: int = 80, number: int = 2,
                    desc: str = "Axial 5mm") -> SeriesRef:
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    paths = []
    for k in range(n):
        ds = _base(CTImageStorage, "CT", series_uid, number, desc)
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(k) * 2.0]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.5, 0.5]
        ds.SliceThickness = 2.0
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        ds.PixelData = (ct_pattern(rows, cols, k) + 1024).astype(np.int16).tobytes()
        path = folder / f"ct_{k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return SeriesRef(series_uid, "CT", desc, number, tuple(paths))


def write_us_multiframe(folder: Path, frames: int = 3, number: int = 7) -> SeriesRef:
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    ds = _base(UltrasoundMultiFrameImageStorage, "US", series_uid, number, "Cine loop")
    ds.InstanceNumber = 1
    ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = 48, 40
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    data = np.zeros((frames, 48, 40), dtype=np.uint8)
    for f in range(frames):
        data[f, :, f * 10 : f * 10 + 10] = 200
    ds.PixelData = data.tobytes()
    path = folder / "us.dcm"
    ds.save_as(path, enforce_file_format=True)
    return SeriesRef(series_uid, "US", "Cine loop", number, (path,))
