"""Augmentation that breaks collection style: each source has its own contrast curve, sharpness, noise, JPEG
history and framing, so the reader is shown every image under many of them (issue 28). Never a left-right flip
(side matters in a chest)."""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def jpeg_roundtrip(u8: np.ndarray, rng: np.random.Generator, p: float = 0.3) -> np.ndarray:
    """With probability `p`, the image re-encoded as JPEG at a random quality (15-90)."""
    if rng.random() >= p:
        return u8
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=int(rng.integers(15, 91)))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))


def style_batch(x: torch.Tensor, g: torch.Generator, *, rotate: float = 8.0, scale: float = 0.12,
                shift: float = 0.06, out: int | None = None) -> torch.Tensor:
    """x: (B, 1, S, S) in [0, 1] -> augmented (B, 1, out, out): random affine (rotation, zoom, shift), contrast
    curve (gamma and a sigmoid contrast), blur or sharpening, noise. Runs on the whole batch at once."""
    b = x.shape[0]
    out = out or x.shape[-1]

    def u(lo: float, hi: float, n: int = b) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=g)

    ang = u(-rotate, rotate) * math.pi / 180
    sc = 1.0 + u(-scale, scale)
    tx, ty = u(-shift, shift) * 2, u(-shift, shift) * 2
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, (b, 1, out, out), align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    fg = (y > 1e-3).float()
    gamma = torch.exp(u(-0.5, 0.5))[:, None, None, None]
    y = y.clamp(1e-4, 1) ** gamma
    k = u(0, 6)[:, None, None, None]  # sigmoid contrast curve, 0 = none
    mid = u(0.35, 0.65)[:, None, None, None]
    curved = torch.sigmoid((y - mid) * (k + 1e-3) * 2)
    lo, hi = torch.sigmoid(-mid * (k + 1e-3) * 2), torch.sigmoid((1 - mid) * (k + 1e-3) * 2)
    y = torch.where(k > 0.5, (curved - lo) / (hi - lo), y)
    sigma = u(0, 1.4)
    kern = torch.arange(-3, 4, dtype=torch.float32)
    w = torch.exp(-(kern[None] ** 2) / (2 * sigma[:, None].clamp_min(0.05) ** 2))
    w = w / w.sum(1, keepdim=True)
    blurred = F.conv2d(F.pad(y.transpose(0, 1), (3, 3, 0, 0), mode="replicate"), w[:, None, None, :], groups=b)
    blurred = F.conv2d(F.pad(blurred, (0, 0, 3, 3), mode="replicate"), w[:, None, :, None], groups=b).transpose(0, 1)
    sharpen = (torch.rand(b, generator=g) < 0.25)[:, None, None, None]
    amount = u(0.3, 1.0)[:, None, None, None]
    y = torch.where(sharpen, y + amount * (y - blurred), blurred)
    y = y + torch.randn(y.shape, generator=g) * u(0, 0.04)[:, None, None, None]
    return (y.clamp(0, 1) * fg)
