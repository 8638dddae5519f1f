"""Decode an image file to the pixels the viewer shows: float32 HxW in [0, 1].

DICOM goes through the viewer's own reader (viewer.io.image: modality LUT, header or percentile window,
MONOCHROME1 inverted) so a model sees what the radiologist sees; PNG/JPEG go through Pillow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from engines.data.sample import ImageDecodeError

DICOM_SUFFIXES = (".dcm", ".dicom", "")


def is_dicom(path: Path) -> bool:
    """True when the file carries the DICOM preamble magic ("DICM" at byte 128)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    lo = center - width / 2.0
    out = (values.astype(np.float32) - np.float32(lo)) / np.float32(max(width, 1e-6))
    return np.clip(out, 0.0, 1.0)


def load_dicom_array(path: Path) -> np.ndarray:
    from viewer.io.image import DicomReadError, load_image

    try:
        img = load_image(path)
        try:  # the viewer's renderer, when present, is the reference for what is on screen
            from viewer.imaging.render import render_frame  # type: ignore[import-not-found]
        except ImportError:
            render_frame = None
        if render_frame is not None:
            try:
                rendered = np.asarray(render_frame(img, 0, img.default_window))
                if rendered.ndim == 3:
                    rendered = rendered[..., :3].mean(axis=2)
                scale = 255.0 if rendered.dtype == np.uint8 else 1.0
                return np.ascontiguousarray(rendered.astype(np.float32) / np.float32(scale))
            except TypeError:
                pass  # a different renderer signature: fall back to the same maths below
        values = img.modality_frame(0)
        wl = img.default_window
        out = _window(values, wl.center, wl.width)
        if getattr(img, "is_monochrome1", False):
            out = 1.0 - out
        return np.ascontiguousarray(out, dtype=np.float32)
    except DicomReadError as exc:
        raise ImageDecodeError(str(exc)) from exc


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
