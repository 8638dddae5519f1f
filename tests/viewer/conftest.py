"""Tiny synthetic DICOM datasets for the viewer core tests (built in memory, no files needed)."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def make_gray_dataset(
    pixels: np.ndarray,
    *,
    modality: str = "CT",
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    **attrs,
) -> Dataset:
    """A minimal single-frame grey image dataset holding `pixels` (uint8/uint16/int16)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


@pytest.fixture
def gray_dataset():
    return make_gray_dataset


def write_ct_series(
    folder,
    volume_stored: np.ndarray,
    *,
    spacing_zyx=(2.0, 0.5, 0.5),
    positions=None,
    orientations=None,
    intercept: float = -1024.0,
    slope: float = 1.0,
    seed: str = "test",
):
    """Write `volume_stored` (z, y, x) as CT files named in shuffled order; returns the paths."""
    from viewer.io.writer import StudyInfo, ct_slice_dataset, save, uid_from

    study = StudyInfo(uid_from(seed, "study"), patient_name="TEST^CT")
    series, frame = uid_from(seed, "series"), uid_from(seed, "for")
    nz = volume_stored.shape[0]
    paths = []
    rng = np.random.default_rng(0)
    names = rng.permutation(nz)
    for k in range(nz):
        pos = positions[k] if positions is not None else (0.0, 0.0, k * spacing_zyx[0])
        ori = orientations[k] if orientations is not None else (1, 0, 0, 0, 1, 0)
        ds = ct_slice_dataset(
            volume_stored[k],
            study=study,
            series_uid=series,
            sop_uid=uid_from(seed, "sop", k),
            frame_of_reference_uid=frame,
            instance_number=k + 1,
            position=pos,
            orientation=ori,
            pixel_spacing=(spacing_zyx[1], spacing_zyx[2]),
            slice_thickness=spacing_zyx[0],
            rescale_intercept=intercept,
            rescale_slope=slope,
        )
        paths.append(save(ds, folder / f"f{names[k]:04d}.dcm"))
    return paths


@pytest.fixture
def ct_series_writer():
    return write_ct_series
