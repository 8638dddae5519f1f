"""Preservation: how much of the image outside the edited region stayed as it was (SSIM and mean
absolute difference outside vs inside the region), the numbers that show an edit was local."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from skimage.metrics import structural_similarity


@dataclass(frozen=True)
class Preservation:
    ssim_outside: float
    ssim_inside: float
    mad_outside: float  # mean |a - b| in grey levels (0..255)
    mad_inside: float
    region_share: float  # share of pixels inside the region

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def difference_map(reference: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """Signed difference edited - reference in grey levels, float32 (what the overlay shows)."""
    a, b = np.asarray(reference), np.asarray(edited)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return b.astype(np.float32) - a.astype(np.float32)


def preservation(reference: np.ndarray, edited: np.ndarray, region: np.ndarray) -> Preservation:
    """SSIM (local map, averaged per side of the region) and mean absolute difference, outside and
    inside a pixel region; NaN on a side with no pixels."""
    a, b = np.asarray(reference, np.float64), np.asarray(edited, np.float64)
    r = np.asarray(region, bool)
    if a.shape != b.shape or a.shape != r.shape or a.ndim != 2:
        raise ValueError(f"reference {a.shape}, edited {b.shape} and region {r.shape} must be equal 2D shapes")
    _, smap = structural_similarity(a, b, data_range=255.0, full=True)
    diff = np.abs(a - b)

    def mean(x: np.ndarray, m: np.ndarray) -> float:
        return float(x[m].mean()) if m.any() else float("nan")

    return Preservation(mean(smap, ~r), mean(smap, r), mean(diff, ~r), mean(diff, r), float(r.mean()))


def blend(original: np.ndarray, counterfactual: np.ndarray, t: float) -> np.ndarray:
    """uint8 (1 - t) * original + t * counterfactual: the slider between the two images."""
    a, b = np.asarray(original, np.float32), np.asarray(counterfactual, np.float32)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    t = min(1.0, max(0.0, float(t)))
    return np.clip((1.0 - t) * a + t * b, 0, 255).round().astype(np.uint8)
