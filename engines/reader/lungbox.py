"""Where the lungs are: the lung-field box the reader crops to, from a small regressor (LungBoxNet)."""

from __future__ import annotations

import numpy as np
import torch

from engines.reader.network import LungBoxNet
from engines.reader.preprocess import equalise, square_crop

THUMB = 96  # side of the thumbnail the box model sees


def thumb_input(view_u8: np.ndarray) -> np.ndarray:
    """float32 (THUMB, THUMB) network input of a square uint8 view."""
    return ((equalise(view_u8).astype(np.float32) / 255.0) - 0.5) / 0.25


@torch.no_grad()
def predict_lung_boxes(net: LungBoxNet, images: list[np.ndarray]) -> np.ndarray:
    """(N, 4) x0y0x1y1 in each image's own pixels: the box around both lung fields. Images are uint8 2D; each is
    seen whole, padded to a centred square as in training."""
    if not images:
        return np.zeros((0, 4), np.float32)
    views, frames = [], []
    for u8 in images:
        h, w = u8.shape
        side = float(max(h, w))
        x0, y0 = (w - side) / 2, (h - side) / 2
        views.append(thumb_input(square_crop(u8, (x0, y0, x0 + side, y0 + side), THUMB)))
        frames.append((x0, y0, side))
    out = net(torch.from_numpy(np.stack(views))[:, None]).numpy().astype(np.float64)
    fr = np.asarray(frames)
    boxes = out * fr[:, 2:3] + np.stack([fr[:, 0], fr[:, 1], fr[:, 0], fr[:, 1]], 1)
    return boxes.astype(np.float32)
