"""Bootstrap 95% intervals for report metrics: studies are resampled with replacement (percentile method), so
a margin between two systems scored on the same studies is known to be real before it is claimed (the
paired interval of a difference resamples the same studies for both)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from engines.labeler.findings import FINDINGS, PATHOLOGIES

_PATH = [FINDINGS.index(p) for p in PATHOLOGIES]


def label_matrix(labels: Sequence[Mapping[str, int]]) -> np.ndarray:
    """(n, 14) bool: finding present (labeler 1)."""
    return np.array([[lab.get(f) == 1 for f in FINDINGS] for lab in labels], dtype=bool).reshape(len(labels),
                                                                                               len(FINDINGS))


def clinical_point(gen: np.ndarray, ref: np.ndarray, idx: np.ndarray) -> dict[str, float]:
    """CE-F1 micro/macro (macro over findings with reference positives in the sample) and the hallucination
    rate on reference-normal studies, as lab.eval.clinical computes them."""
    g, r = gen[idx], ref[idx]
    tp, fp, fn = (g & r).sum(0), (g & ~r).sum(0), (~g & r).sum(0)
    def f1(t, p, n):
        prec = np.divide(t, t + p, out=np.zeros(t.shape, float), where=(t + p) > 0)
        rec = np.divide(t, t + n, out=np.zeros(t.shape, float), where=(t + n) > 0)
        return np.divide(2 * prec * rec, prec + rec, out=np.zeros(t.shape, float), where=(prec + rec) > 0)
    micro = float(f1(np.array([tp.sum()]), np.array([fp.sum()]), np.array([fn.sum()]))[0])
    active = (tp + fn) > 0
    macro = float(f1(tp, fp, fn)[active].mean()) if active.any() else 0.0
    normal = r[:, 0]
    halluc = float(g[normal][:, _PATH].any(1).mean()) if normal.any() else float("nan")
    return {"micro": micro, "macro": macro, "halluc": halluc}


def bootstrap(stat: Callable[[np.ndarray], dict[str, float]], n: int, reps: int = 1000,
              seed: int = 0) -> tuple[dict[str, float], dict[str, tuple[float, float]], list[dict[str, float]]]:
    """(point estimates, 95% percentile intervals, the replicate values) of `stat(indices)` over n studies."""
    rng = np.random.default_rng(seed)
    point = stat(np.arange(n))
    reps_out = [stat(rng.integers(0, n, n)) for _ in range(reps)]
    ci = {k: (float(np.nanpercentile([r[k] for r in reps_out], 2.5)),
              float(np.nanpercentile([r[k] for r in reps_out], 97.5))) for k in point}
    return point, ci, reps_out


def paired_difference(a: list[dict[str, float]], b: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """95% interval of a - b from replicates drawn with the same seed (the same resampled studies)."""
    return {k: (float(np.nanpercentile([x[k] - y[k] for x, y in zip(a, b, strict=True)], 2.5)),
                float(np.nanpercentile([x[k] - y[k] for x, y in zip(a, b, strict=True)], 97.5))) for k in a[0]}
