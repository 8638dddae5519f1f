"""JPEG 2000 / HTJ2K / JPEG-LS DICOM files for the decoding tests, built from a known pixel array."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
from pydicom import uid
from pydicom.encaps import encapsulate

from viewer.io.refs import SeriesRef
from viewer.io.writer import StudyInfo, ct_slice_dataset, save, uid_from

HTJ2K_SYNTAXES = (uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K)


def smooth_pixels(size: int, signed: bool = False, seed: int = 0) -> np.ndarray:
    """A 12-bit radiograph-like frame: smooth structure plus noise (int16 when `signed`)."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    img = 2000 + 1500 * np.sin(6 * xx) * np.cos(4 * yy)
    img += np.random.default_rng(seed).normal(0, 30, img.shape)
    pixels = np.clip(img, 0, 4095)
    return (pixels - 2048).astype(np.int16) if signed else pixels.astype(np.uint16)


def compressed_dataset(pixels: np.ndarray, syntax: str, *, index: int = 0, seed: str = "cmp"):
    """A CT-shaped dataset holding `pixels` (12 bits stored) encoded with `syntax`."""
    study = StudyInfo(uid_from(seed, "study"), patient_name="TEST^J2K")
    ds = ct_slice_dataset(
        pixels,
        study=study,
        series_uid=uid_from(seed, "series"),
        sop_uid=uid_from(seed, "sop", index),
        frame_of_reference_uid=uid_from(seed, "for"),
        instance_number=index + 1,
        position=(0.0, 0.0, -float(index)),
        rescale_intercept=0.0 if pixels.dtype.kind == "i" else -1024.0,
        window=None,
    )
    if syntax in HTJ2K_SYNTAXES:
        ds.PixelData = encapsulate([imagecodecs.htj2k_encode(pixels, reversible=True)])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax
    else:
        ds.compress(syntax, encoding_plugin="")
    return ds


def write_compressed_series(folder: Path, syntax: str, n: int = 3, size: int = 256, seed: str = "cmp") -> SeriesRef:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        ds = compressed_dataset(np.roll(smooth_pixels(size), 7 * k, axis=1), syntax, index=k, seed=seed)
        paths.append(save(ds, folder / f"img_{k:03d}.dcm"))
    return SeriesRef(uid_from(seed, "series"), "CT", "compressed", 1, tuple(paths))
