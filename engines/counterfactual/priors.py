"""Where on a frontal chest radiograph a finding can be: soft anatomical priors for the edit region.

A half-trained model's attention and likelihood shift are noisy; an effusion still belongs at the
costophrenic angles and cardiomegaly at the heart borders. The prior is a smooth (g, g) map in [0, 1]
over the image as the model sees it (centred square, patient's right on the image's left as in a PA
view); side and zone words of the changed sentences ("right", "upper lobe", "base") narrow it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
from scipy import ndimage

# (y0, y1, x0, x1) boxes in unit coordinates of the square image; the union is the finding's area
_BOXES: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "Pleural Effusion": ((0.6, 0.9, 0.08, 0.4), (0.6, 0.9, 0.6, 0.92)),
    "Pleural Other": ((0.15, 0.9, 0.06, 0.3), (0.15, 0.9, 0.7, 0.94)),
    "Pneumothorax": ((0.12, 0.6, 0.08, 0.45), (0.12, 0.6, 0.55, 0.92)),
    "Cardiomegaly": ((0.45, 0.85, 0.3, 0.78),),
    "Enlarged Cardiomediastinum": ((0.2, 0.6, 0.35, 0.65),),
    "Edema": ((0.3, 0.75, 0.15, 0.85),),
    "Fracture": ((0.1, 0.9, 0.05, 0.95),),
    "Support Devices": ((0.05, 0.95, 0.05, 0.95),),
}
_LUNGS = ((0.15, 0.85, 0.1, 0.45), (0.15, 0.85, 0.55, 0.9))  # opacity, lesion, consolidation, pneumonia...

_RIGHT = re.compile(r"\bright\b|\brt\b", re.I)
_LEFT = re.compile(r"\bleft\b|\blt\b", re.I)
_UPPER = re.compile(r"\b(?:upper|apex|apical|apices)\b", re.I)
_LOWER = re.compile(r"\b(?:lower|base|basal|bases|basilar|costophrenic)\b", re.I)
_MIDDLE = re.compile(r"\b(?:middle|lingula|perihilar|hilar|mid)\b", re.I)


def finding_prior(findings: Iterable[str], sentences: Iterable[str], grid: int) -> np.ndarray:
    """(grid, grid) prior in [0, 1] for the union of `findings`, narrowed by side/zone words."""
    text = " ".join(sentences)
    right, left = bool(_RIGHT.search(text)), bool(_LEFT.search(text))
    zones = [z for z, rx in (("upper", _UPPER), ("lower", _LOWER), ("middle", _MIDDLE)) if rx.search(text)]
    c = (np.arange(grid) + 0.5) / grid
    yy, xx = np.meshgrid(c, c, indexing="ij")
    out = np.zeros((grid, grid), np.float32)
    for f in findings:
        for y0, y1, x0, x1 in _BOXES.get(f, _LUNGS):
            out = np.maximum(out, ((yy >= y0) & (yy <= y1) & (xx >= x0) & (xx <= x1)).astype(np.float32))
    if not out.any():
        out[:] = 1.0
    narrowed = out.copy()
    if right != left:  # patient's right is the image's left (PA)
        narrowed *= (xx < 0.5) if right else (xx >= 0.5)
    if zones:
        band = np.zeros_like(out, dtype=bool)
        for z in zones:
            band |= {"upper": yy < 0.5, "lower": yy >= 0.5, "middle": (yy >= 0.3) & (yy < 0.7)}[z]
        narrowed *= band
    if narrowed.any():
        out = narrowed
    return np.clip(ndimage.gaussian_filter(out, sigma=max(grid / 32, 0.5), mode="nearest"), 0, 1)
