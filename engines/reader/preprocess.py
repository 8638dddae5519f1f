"""What the reader sees: the image trimmed of padding bars, cropped to the lung fields, intensity-normalised.

Each step removes something a collection leaves on its images rather than the chest shows: black (or white)
bars from padding a figure to a square, labels and collimation outside the thorax, and each source's contrast
curve (histogram equalisation maps every image to the same intensity distribution).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from engines.data.images import to_uint8

#: A border row/column is padding when almost all of it is one flat value.
_FLAT_STD = 2.0


def _as_u8(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    arr = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
    if arr.ndim != 2:
        raise ValueError(f"image must be a 2D (grayscale) array, got shape {image.shape}")
    if arr.size == 0 or min(arr.shape) < 8:
        raise ValueError(f"image is too small to read (shape {image.shape})")
    return to_uint8(arr)


def content_box(u8: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the image without flat border bars (padding, letterboxing)."""
    h, w = u8.shape
    f = u8.astype(np.float32)
    rows = f.std(axis=1) > _FLAT_STD
    cols = f.std(axis=0) > _FLAT_STD
    if not rows.any() or not cols.any():
        return 0, 0, w, h
    y0, y1 = int(np.argmax(rows)), int(h - np.argmax(rows[::-1]))
    x0, x1 = int(np.argmax(cols)), int(w - np.argmax(cols[::-1]))
    if (x1 - x0) < w // 4 or (y1 - y0) < h // 4:  # a mostly flat image: keep it whole
        return 0, 0, w, h
    return x0, y0, x1, y1


def square_crop(u8: np.ndarray, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """The square around `box` (x0, y0, x1, y1 in pixels) resized to (size, size); outside the image is black."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(x1 - x0, y1 - y0, 8.0)
    left, top = cx - side / 2, cy - side / 2
    im = Image.fromarray(u8)
    return np.asarray(im.transform((size, size), Image.EXTENT, (left, top, left + side, top + side),
                                   resample=Image.BILINEAR, fillcolor=0))


def equalise(u8: np.ndarray) -> np.ndarray:
    """Histogram equalisation over the non-black pixels (black stays black: it is outside the image)."""
    fg = u8 > 0
    if fg.sum() < 16:
        return u8.copy()
    hist = np.bincount(u8[fg].ravel(), minlength=256).astype(np.float64)
    cdf = hist.cumsum() / hist.sum()
    lut = np.clip(np.round(cdf * 254 + 1), 1, 255).astype(np.uint8)
    lut[0] = 0
    return lut[u8]


def zscore(u8: np.ndarray) -> np.ndarray:
    """Mean 128, standard deviation 40 over the non-black pixels."""
    fg = u8 > 0
    if fg.sum() < 16:
        return u8.copy()
    f = u8.astype(np.float32)
    m, s = float(f[fg].mean()), float(f[fg].std()) or 1.0
    out = np.clip((f - m) / s * 40 + 128, 1, 255)
    return np.where(fg, out, 0).round().astype(np.uint8)


def normalise(u8: np.ndarray, how: str) -> np.ndarray:
    if how == "none":
        return u8
    if how == "equalise":
        return equalise(u8)
    if how == "zscore":
        return zscore(u8)
    raise ValueError(f"unknown normalisation {how!r}")


def expand_box(box: tuple[float, float, float, float], margin: float, w: int, h: int
               ) -> tuple[float, float, float, float]:
    """`box` grown by `margin` of its side on every edge, clipped to the image."""
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    return max(0.0, x0 - mx), max(0.0, y0 - my), min(float(w), x1 + mx), min(float(h), y1 + my)
