"""Training of the lung-field box regressor (engines.reader.network.LungBoxNet) on the anatomy boxes of the curated
set (about 130 images carry "Right Lung" / "Left Lung" boxes).

Each step shows every image through a random square window (zoom 0.75-1.35, shift +-12 %) with the box moved by the
same transform, so the regressor learns to find the lungs wherever the framing puts them, and not where these 130
figures happen to have them. Loss: smooth L1 on the normalised corners plus (1 - IoU).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from engines.reader.lungbox import THUMB, thumb_input
from engines.reader.network import LungBoxNet
from engines.reader.preprocess import square_crop


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (N, 4) x0y0x1y1 boxes, row by row."""
    ix = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = ix * iy
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / np.clip(area(a) + area(b) - inter, 1e-6, None)


def _torch_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ix = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp_min(0)
    iy = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp_min(0)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]).clamp_min(0) * (a[:, 3] - a[:, 1]).clamp_min(0)
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a + area_b - inter).clamp_min(1e-6)


def random_view(u8: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random square window of the image as a THUMB x THUMB thumbnail, and the box in its [0, 1] coordinates."""
    n = u8.shape[0]
    side = n * rng.uniform(0.75, 1.35)
    cx, cy = n / 2 + rng.uniform(-0.12, 0.12) * n, n / 2 + rng.uniform(-0.12, 0.12) * n
    x0, y0 = cx - side / 2, cy - side / 2
    view = square_crop(u8, (x0, y0, x0 + side, y0 + side), THUMB)
    b = (np.asarray(box, np.float64) - [x0, y0, x0, y0]) / side
    return view, np.clip(b, 0, 1).astype(np.float32)


def train_lungbox(images: np.ndarray, boxes: np.ndarray, *, epochs: int = 150, batch: int = 32, lr: float = 2e-3,
                  seed: int = 0, log: Callable[[str], None] = print) -> LungBoxNet:
    """images: (N, S, S) uint8 as the manifest has them; boxes: (N, 4) x0y0x1y1 in their pixels."""
    if len(images) != len(boxes) or len(images) < 4:
        raise ValueError("need at least 4 images with lung boxes")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = LungBoxNet()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = max(1, len(images) // batch) * epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    t0 = time.perf_counter()
    net.train()
    for step in range(steps):
        idx = rng.integers(0, len(images), batch)
        views, targets = zip(*(random_view(images[i], boxes[i], rng) for i in idx), strict=True)
        x = torch.from_numpy(np.stack([thumb_input(v) for v in views]))[:, None]
        y = torch.from_numpy(np.stack(targets))
        pred = net(x)
        loss = F.smooth_l1_loss(pred, y, beta=0.05) + (1 - _torch_iou(pred, y)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % max(1, steps // 10) == 0:
            log(f"lung box step {step + 1}/{steps}: loss {loss.item():.4f} ({time.perf_counter() - t0:.0f} s)")
    net.eval()
    return net
