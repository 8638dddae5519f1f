"""Bootstrap 95% intervals over patients: images of one patient (split group) are resampled together, since
they are not independent evidence."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def cluster_bootstrap(statistic: Callable[[np.ndarray], float | None], groups: Sequence[str], *,
                      resamples: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """(low, high) percentile interval of `statistic(indices)` over resamples of whole groups; resamples where
    the statistic is undefined (None, e.g. no positives drawn) are skipped. None when fewer than half are defined."""
    keys = np.asarray(groups)
    uniq, inv = np.unique(keys, return_inverse=True)
    members = [np.flatnonzero(inv == k) for k in range(len(uniq))]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(resamples):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[k] for k in pick])
        v = statistic(idx)
        if v is not None and np.isfinite(v):
            vals.append(float(v))
    if len(vals) < resamples / 2:
        return None
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))
