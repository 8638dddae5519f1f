"""Fitting the reader's linear readout (engines.reader.features): standardise, PCA, then one L2-regularised,
class-balanced logistic regression per finding on the rows whose source speaks to it - folded into one effective
weight vector per finding over the raw features, which is what the product stores and explains with."""

from __future__ import annotations

import numpy as np

from engines.reader.features import LinearReadout


def fit_linear(feats: np.ndarray, y: np.ndarray, known: np.ndarray, *, c: float = 3e-4, pca: int = 128,
               seed: int = 0) -> LinearReadout:
    """feats (N, F), y/known (N, K) -> LinearReadout. A finding with one class among its known rows gets zero
    weights and the log-odds of its prevalence as bias."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(feats, np.float64)
    mu, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    z = (x - mu) / sd
    p = PCA(min(pca, x.shape[0] - 1, x.shape[1]), random_state=seed).fit(z)
    proj = p.transform(z)
    k = y.shape[1]
    weight = np.zeros((k, x.shape[1]))
    bias = np.zeros(k)
    for j in range(k):
        rows = np.asarray(known[:, j], bool)
        t = np.asarray(y[rows, j], bool)
        if t.all() or not t.any():
            prev = float(np.clip(t.mean() if len(t) else 0.5, 1e-3, 1 - 1e-3))
            bias[j] = np.log(prev / (1 - prev))
            continue
        lr = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(proj[rows], t)
        w_pc = p.components_.T @ lr.coef_[0]  # (F,) in standardised units
        weight[j] = w_pc / sd
        bias[j] = lr.intercept_[0] - (mu / sd + p.mean_) @ w_pc
    return LinearReadout(weight, bias, mu)
