"""Colour maps for explanation maps: a float map (e.g. an AI saliency map) as RGBA.

One place for the colouring shared by the viewer's overlay (the viewport paints the result with its own
transform, so the map follows zoom/pan/rotation and is never burned into the image pixels), the explain
panel's colour bar, and the map exported as a DICOM secondary capture (explain.export).
"""

from __future__ import annotations

import numpy as np

# Anchor colours (position, r, g, b) interpolated into 256-entry tables.
_ANCHORS: dict[str, list[tuple[float, int, int, int]]] = {
    "jet": [(0.0, 0, 0, 128), (0.125, 0, 0, 255), (0.375, 0, 255, 255), (0.625, 255, 255, 0),
            (0.875, 255, 0, 0), (1.0, 128, 0, 0)],
    "hot": [(0.0, 10, 0, 0), (0.375, 255, 0, 0), (0.75, 255, 255, 0), (1.0, 255, 255, 255)],
    "viridis": [(0.0, 68, 1, 84), (0.25, 59, 82, 139), (0.5, 33, 145, 140), (0.75, 94, 201, 98),
                (1.0, 253, 231, 37)],
    "gray": [(0.0, 0, 0, 0), (1.0, 255, 255, 255)],
}
COLORMAPS = tuple(_ANCHORS)


def colormap_table(name: str) -> np.ndarray:
    """A 256x3 uint8 lookup table for `name` (one of COLORMAPS)."""
    if name not in _ANCHORS:
        raise ValueError(f"unknown colormap {name!r}; expected one of {COLORMAPS}")
    anchors = np.asarray(_ANCHORS[name], dtype=np.float64)
    x = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(x, anchors[:, 0], anchors[:, c]) for c in (1, 2, 3)], axis=1)
    return np.round(table).astype(np.uint8)


def colorize(values: np.ndarray, colormap: str = "jet", opacity: float = 0.5,
             threshold: float | None = None) -> np.ndarray:
    """HxW float map -> HxWx4 uint8 RGBA (not premultiplied).

    Maps already in [0, 1] are used as they are (so a model's probabilities keep their meaning);
    anything else is scaled min..max. Values below `threshold` (after scaling) are fully transparent.
    """
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"overlay must be a 2D array, got shape {arr.shape}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be within 0..1, got {opacity}")
    finite = np.isfinite(arr)
    arr = np.where(finite, arr, 0.0)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 1.0)
    if lo < 0.0 or hi > 1.0:
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    idx = np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)
    rgba = np.empty(arr.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = colormap_table(colormap)[idx]
    alpha = np.full(arr.shape, round(opacity * 255), dtype=np.uint8)
    hidden = ~finite
    if threshold is not None:
        hidden |= arr < threshold
    alpha[hidden] = 0
    rgba[..., 3] = alpha
    return rgba
