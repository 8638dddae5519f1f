"""Scores for maps against boxes (CheXlocalize's protocol) and for uncertainty against correctness.

Pointing game: a hit when the map's maximum lies inside a ground-truth box. IoU: the map is min-max
normalised and binarised with Otsu's threshold (CheXlocalize's default), then compared with the union
of the boxes. Uncertainty: AUROC of the score for "this finding decision is wrong", and clinical F1
after abstaining on a share of decisions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.filters import threshold_otsu

from lab.eval.auroc import auroc as labelled_auroc

Box = tuple[float, float, float, float]  # x, y, w, h in pixels


def box_mask(shape: tuple[int, int], boxes: Sequence[Box]) -> np.ndarray:
    m = np.zeros(shape, bool)
    for x, y, w, h in boxes:
        x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
        x1, y1 = min(int(np.ceil(x + w)), shape[1]), min(int(np.ceil(y + h)), shape[0])
        m[y0:y1, x0:x1] = True
    return m


def pointing_hit(values: np.ndarray, boxes: Sequence[Box]) -> bool:
    """Is the map's maximum inside one of the boxes? (ties: the first maximum in row-major order)"""
    y, x = np.unravel_index(int(np.argmax(np.nan_to_num(values, nan=-np.inf))), values.shape)
    return bool(box_mask(values.shape, boxes)[y, x])


def otsu_mask(values: np.ndarray) -> np.ndarray:
    """CheXlocalize binarisation: min-max to 0..255, Otsu's threshold (a flat map gives no pixels)."""
    a = np.nan_to_num(np.asarray(values, np.float64))
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, bool)
    u8 = np.round((a - lo) / (hi - lo) * 255).astype(np.uint8)
    return u8 > threshold_otsu(u8)


def iou(mask: np.ndarray, boxes: Sequence[Box]) -> float:
    gt = box_mask(mask.shape, boxes)
    union = np.logical_or(mask, gt).sum()
    return float(np.logical_and(mask, gt).sum() / union) if union else 0.0


def mass_in(values: np.ndarray, boxes: Sequence[Box]) -> float:
    """Mean map value inside the boxes (compare two regions of one map)."""
    m = box_mask(values.shape, boxes)
    return float(np.nan_to_num(values)[m].mean()) if m.any() else float("nan")


def centre_map(shape: tuple[int, int]) -> np.ndarray:
    """Baseline: a Gaussian at the image centre (peaks where most boxes' centres are)."""
    h, w = shape
    y, x = np.mgrid[:h, :w]
    return np.exp(-(((y - (h - 1) / 2) / (h / 4)) ** 2 + ((x - (w - 1) / 2) / (w / 4)) ** 2) / 2).astype(np.float32)


def random_map(shape: tuple[int, int], rng: np.random.Generator, grid: int = 16) -> np.ndarray:
    """Baseline: uniform noise on the token grid, upsampled like the real maps."""
    from explain.geometry import grid_to_image

    return grid_to_image(rng.random((grid, grid)).astype(np.float32), shape)


def auroc(scores: Sequence[float], wrong: Sequence[bool]) -> float | None:
    """AUROC of `scores` for `wrong` (None when only one class is present)."""
    return labelled_auroc(wrong, scores)


def micro_f1(pred: Sequence[bool], ref: Sequence[bool]) -> float:
    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    tp, fp, fn = int((p & r).sum()), int((p & ~r).sum()), int((~p & r).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def withheld_f1(pred: Sequence[bool], ref: Sequence[bool], scores: Sequence[float], share: float = 0.2,
                rng: np.random.Generator | None = None, draws: int = 50) -> tuple[float, float, float]:
    """(F1 of all decisions, F1 after withholding the `share` most uncertain, mean F1 after withholding
    the same number at random over `draws`). Ties in `scores` are broken at random."""
    p, r, s = np.asarray(pred, bool), np.asarray(ref, bool), np.asarray(scores, np.float64)
    n = len(p)
    k = int(round(share * n))
    rng = rng or np.random.default_rng(0)
    order = np.lexsort((rng.random(n), -s))  # most uncertain first, random among equals
    keep = np.ones(n, bool)
    keep[order[:k]] = False
    rand = []
    for _ in range(draws):
        kr = np.ones(n, bool)
        kr[rng.choice(n, k, replace=False)] = False
        rand.append(micro_f1(p[kr], r[kr]))
    return micro_f1(p, r), micro_f1(p[keep], r[keep]), float(np.mean(rand))
