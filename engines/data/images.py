"""Decode an image file to the pixels the viewer shows: float32 HxW in [0, 1].

DICOM goes through the viewer's own reader (viewer.io.image: modality LUT, header or percentile window,
MONOCHROME1 inverted) so a model sees what the radiologist sees; PNG/JPEG go through Pillow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageDecodeError(RuntimeError):
    """An image file is missing or cannot be decoded (the message names the file and why)."""


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Pixels -> uint8 of the same shape: uint8 kept as is; floats in [0, 1] (what the loaders here and the viewer
    give) times 255, keeping their contrast; anything else min-max scaled to 0..255 (NaN and inf as 0)."""
    arr = np.asarray(pixels)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating) and arr.size and np.nanmin(arr) >= 0 and np.nanmax(arr) <= 1:
        return (np.nan_to_num(arr.astype(np.float64)) * 255).round().astype(np.uint8)
    a = arr.astype(np.float64)
    if not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    return np.zeros(a.shape, np.uint8) if hi <= lo else ((a - lo) / (hi - lo) * 255).round().astype(np.uint8)


def is_dicom(path: Path) -> bool:
    """True when the file carries the DICOM preamble magic ("DICM" at byte 128)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def load_dicom_array(path: Path) -> np.ndarray:
    """The viewer's own decode and display LUT (header VOI LUT or window, MONOCHROME1 inverted)."""
    from viewer.imaging.render import render_frame
    from viewer.io.image import DicomReadError, load_image

    try:
        img = load_image(path)
        shown = np.asarray(render_frame(img, 0, None))
    except DicomReadError as exc:
        raise ImageDecodeError(str(exc)) from exc
    if shown.ndim == 3:
        shown = shown[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.ascontiguousarray(shown.astype(np.float32) / np.float32(255.0))


def load_raster_array(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32)
                lo, hi = np.percentile(arr, [0.5, 99.5])
                return np.clip((arr - lo) / max(hi - lo, 1.0), 0, 1).astype(np.float32)
            if im.mode in ("RGBA", "LA", "PA"):
                bg = Image.new("RGBA", im.size, (0, 0, 0, 255))
                im = Image.alpha_composite(bg, im.convert("RGBA"))
            arr = np.asarray(im.convert("L"), dtype=np.float32)
    except FileNotFoundError as exc:
        raise ImageDecodeError(f"{path}: file not found") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageDecodeError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    return arr / np.float32(255.0)


def load_image_array(path: str | Path) -> np.ndarray:
    """float32 HxW in [0, 1]; raises ImageDecodeError with the path and the reason."""
    path = Path(path)
    if not path.exists():
        raise ImageDecodeError(f"{path}: file not found")
    if is_dicom(path) or path.suffix.lower() in (".dcm", ".dicom"):
        return load_dicom_array(path)
    return load_raster_array(path)
