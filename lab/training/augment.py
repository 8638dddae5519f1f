"""Photometric and small geometric jitter of radiographs, encoded as extra VQ token views of each image.

With 2,319 training images the backbone memorises image -> report after ~70-130k examples (measured: a
checkpoint past that writes a normal report for nearly every val image). Each jittered copy gives the same
report a different token grid, so the model has to read findings rather than recognise the grid.

Only what varies between real acquisitions is jittered: a few degrees of rotation, a few percent of shift
and scale (positioning), contrast, brightness and gamma (exposure and processing). Never a left-right flip:
the heart, the aortic knob and every 'left'/'right' word in a report depend on the side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Jitter:
    rotate_deg: float = 5.0
    shift: float = 0.05  # of the image side
    scale: float = 0.06  # +- relative
    contrast: float = 0.15  # +- relative, around the image mean
    brightness: float = 0.06  # +- of the full range
    gamma: float = 0.2  # log-uniform in [1/(1+g), 1+g]


def jitter_image(u8: np.ndarray, rng: np.random.Generator, j: Jitter = Jitter()) -> np.ndarray:
    """One random jitter of a square uint8 image; uncovered corners are black, as the padded originals."""
    if u8.dtype != np.uint8 or u8.ndim != 2:
        raise ValueError(f"expected a 2D uint8 image, got {u8.dtype} {u8.shape}")
    n = u8.shape[0]
    angle = rng.uniform(-j.rotate_deg, j.rotate_deg)
    scale = 1.0 + rng.uniform(-j.scale, j.scale)
    dx, dy = rng.uniform(-j.shift, j.shift, size=2) * n
    im = Image.fromarray(u8).rotate(angle, resample=Image.BILINEAR, translate=(dx, dy), fillcolor=0)
    if abs(scale - 1.0) > 1e-3:
        m = int(round(n * scale))
        im = im.resize((m, m), Image.BILINEAR)
        if m >= n:
            o = (m - n) // 2
            im = im.crop((o, o, o + n, o + n))
        else:
            canvas = Image.new("L", (n, n), 0)
            canvas.paste(im, ((n - m) // 2, (n - m) // 2))
            im = canvas
    x = np.asarray(im, dtype=np.float32) / 255.0
    fg = x > 0  # keep the padding black
    gamma = float(np.exp(rng.uniform(-np.log1p(j.gamma), np.log1p(j.gamma))))
    x = np.where(fg, x ** gamma, 0.0)
    mean = float(x[fg].mean()) if fg.any() else 0.0
    x = (x - mean) * (1.0 + rng.uniform(-j.contrast, j.contrast)) + mean + rng.uniform(-j.brightness, j.brightness)
    x = np.where(fg, np.clip(x, 0.0, 1.0), 0.0)
    return (x * 255.0).round().astype(np.uint8)
