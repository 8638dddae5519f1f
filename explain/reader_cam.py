"""The finding reader's Grad-CAM as an explanation map: where the model that produced the reading looked.

The reader (engines.reader) reads a lung-field crop; its CAM is pasted back onto the image and then resampled onto
the padded square the other maps use (explain.geometry), at a finer grid than the backbone's 16 x 16 tokens.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from explain.geometry import padded_square

READER_GRID = 64  # side of the stored map over the padded square


def reader_grid(reader, image: np.ndarray, findings: list[str], grid: int = READER_GRID) -> np.ndarray:
    """(grid, grid) >= 0 over the image's padded square: the reader's Grad-CAM summed over `findings`."""
    unknown = [f for f in findings if f not in reader.findings]
    if unknown or not findings:
        raise ValueError(f"findings {unknown or findings} are not the reader's ({', '.join(reader.findings)})")
    img = np.asarray(image)
    cam = sum(reader.cam(img, f) for f in findings)
    h, w = cam.shape
    side, top, left = padded_square((h, w))
    sq = np.zeros((side, side), np.float32)
    sq[top:top + h, left:left + w] = cam
    t = torch.from_numpy(sq)[None, None]
    return F.adaptive_avg_pool2d(t, grid)[0, 0].numpy().astype(np.float32)
