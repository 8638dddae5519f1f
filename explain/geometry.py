"""Token-grid maps -> maps over the original image's pixels.

`engines.pipeline.prepare_image` zero-pads an image to a centred square and resizes it to the VQ's
size; a token grid therefore covers the padded square, not the image. Undoing the padding here keeps
a map aligned with the pixels the viewer shows (and so with pixel spacing and measurements).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def padded_square(shape: tuple[int, int]) -> tuple[int, int, int]:
    """(side, top, left) of the centred square the pipeline pads an image of `shape` into."""
    h, w = int(shape[0]), int(shape[1])
    side = max(h, w)
    return side, (side - h) // 2, (side - w) // 2


def grid_to_image(grid_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a (g, g) map to the padded square, then the image's own (H, W) crop."""
    g = np.asarray(grid_map, dtype=np.float32)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"grid map must be square 2D, got shape {g.shape}")
    if len(shape) < 2 or min(shape[:2]) < 1:
        raise ValueError(f"image shape must be (H, W), got {shape}")
    h, w = int(shape[0]), int(shape[1])
    side, top, left = padded_square((h, w))
    t = torch.from_numpy(np.nan_to_num(g))[None, None]
    full = F.interpolate(t, size=(side, side), mode="bilinear", align_corners=False)[0, 0]
    return full[top:top + h, left:left + w].numpy().astype(np.float32, copy=False)


def image_box_to_grid(box_xywh: tuple[float, float, float, float], shape: tuple[int, int],
                      grid: int) -> tuple[float, float, float, float]:
    """A box in image pixels -> the same box in token-grid units (for coarse checks and tests)."""
    side, top, left = padded_square(shape)
    x, y, bw, bh = box_xywh
    s = grid / side
    return (x + left) * s, (y + top) * s, bw * s, bh * s


def normalise(values: np.ndarray, positive_only: bool = False) -> np.ndarray:
    """Scale a map to [0, 1] for display (min..max, or 0..max of the positive part for signed
    attributions, where negative evidence should not light up)."""
    a = np.nan_to_num(np.asarray(values, dtype=np.float32))
    if positive_only:
        a = np.clip(a, 0.0, None)
        hi = float(a.max()) if a.size else 0.0
        return a / hi if hi > 0 else np.zeros_like(a)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
