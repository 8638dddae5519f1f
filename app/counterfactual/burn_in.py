"""Burn the synthetic warning into the pixels, so it survives any viewer, screenshot or export that
drops the header: a black band at the top and the bottom with white text."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WARNING = "SYNTHETIC - NOT FOR DIAGNOSIS"


def burn_in_warning(image: np.ndarray, text: str = WARNING) -> np.ndarray:
    """uint8 copy of a 2D greyscale image with `text` burned in at the top and bottom edges."""
    a = np.asarray(image)
    if a.ndim != 2 or a.dtype != np.uint8 or min(a.shape) < 32:
        raise ValueError(f"burn-in needs a 2D uint8 image of at least 32x32, got {a.dtype} {a.shape}")
    h, w = a.shape
    im = Image.fromarray(a.copy())
    draw = ImageDraw.Draw(im)
    size = max(8, min(h // 28, 24))  # small: the bands must not hide apices or costophrenic angles
    font = ImageFont.load_default(size=size)
    while size > 6 and draw.textlength(text, font=font) > w - 4:
        size -= 1
        font = ImageFont.load_default(size=size)
    band = size + 6
    tw = draw.textlength(text, font=font)
    for y0 in (0, h - band):
        draw.rectangle([0, y0, w, y0 + band - 1], fill=0)
        draw.text(((w - tw) / 2, y0 + 2), text, fill=255, font=font)
    return np.asarray(im)
