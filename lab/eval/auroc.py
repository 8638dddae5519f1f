"""AUROC with the evaluation's convention: None, not an error, when only one class is present."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def auroc(labels: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float | None:
    """Area under the ROC curve of `scores` for the positives in `labels` (ties count half)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels, dtype=bool)
    if not 0 < y.sum() < len(y):
        return None
    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64)))
