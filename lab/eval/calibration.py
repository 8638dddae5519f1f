"""Calibration of per-finding probabilities: expected calibration error, reliability diagrams, and fitting
the runtime calibration (engines.calibration) by temperature, Platt or isotonic regression.

Any reader plugs in: the functions take (probabilities, labels) per finding. `radstation-eval calibration`
runs them on the built-in engine's finding head; ECE of a fitted calibration is reported out of fold
(fit on k-1 folds, scored on the held-out one), so the number is not the fit scoring itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.calibration import DEFAULT_BAND, METHODS, Calibration, FindingCalibration, _logit


@dataclass(frozen=True)
class ReliabilityBin:
    lo: float
    hi: float
    count: int
    mean_probability: float
    positive_rate: float


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1]: per bin, how many predictions, their mean and the share that were positive.
    Empty bins are left out."""
    p = np.clip(np.asarray(probs, np.float64), 0, 1)
    y = np.asarray(labels, np.float64)
    if p.shape != y.shape:
        raise ValueError(f"{p.shape[0]} probabilities for {y.shape[0]} labels")
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), int(m.sum()), float(p[m].mean()),
                                      float(y[m].mean())))
    return out


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the count-weighted mean |mean probability - positive rate| over the bins."""
    rows = reliability(probs, labels, bins)
    n = sum(r.count for r in rows)
    if n == 0:
        raise ValueError("no predictions to score")
    return float(sum(r.count * abs(r.mean_probability - r.positive_rate) for r in rows) / n)


def fit_finding(probs: np.ndarray, labels: np.ndarray, method: str) -> FindingCalibration:
    """One finding's calibration fitted on (raw probability, label) pairs."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    p = np.asarray(probs, np.float64)
    y = np.asarray(labels, np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError("calibration needs both positive and negative examples")
    z = _logit(p)
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        return FindingCalibration("isotonic", {"x": [float(v) for v in iso.X_thresholds_],
                                               "y": [float(v) for v in iso.y_thresholds_]})
    from scipy.optimize import minimize

    def nll(theta: np.ndarray) -> float:
        a, b = (theta[0], theta[1]) if method == "platt" else (1.0 / max(theta[0], 1e-3), 0.0)
        q = np.clip(1 / (1 + np.exp(-(a * z + b))), 1e-9, 1 - 1e-9)
        return float(-(y * np.log(q) + (1 - y) * np.log(1 - q)).mean())

    if method == "platt":
        res = minimize(nll, np.array([1.0, 0.0]), method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-8})
        return FindingCalibration("platt", {"a": float(res.x[0]), "b": float(res.x[1])})
    res = minimize(nll, np.array([1.0]), method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-8})
    return FindingCalibration("temperature", {"t": float(max(res.x[0], 1e-3))})


def fit_calibration(probs: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], method: str = "platt",
                    band: tuple[float, float] = DEFAULT_BAND, min_positives: int = 5,
                    info: dict[str, Any] | None = None) -> Calibration:
    """A Calibration over the findings with at least `min_positives` positives (others stay uncalibrated)."""
    findings = {}
    for name, p in probs.items():
        y = np.asarray(labels[name])
        if min(int(y.sum()), int(len(y) - y.sum())) >= min_positives:
            findings[name] = fit_finding(p, y, method)
    return Calibration(findings, band, dict(info or {}))


def out_of_fold(probs: np.ndarray, labels: np.ndarray, method: str, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Calibrated probabilities where each row's calibration was fitted without it (stratified folds)."""
    from sklearn.model_selection import StratifiedKFold

    p = np.asarray(probs, np.float64)
    y = np.asarray(labels).astype(int)
    out = np.empty_like(p)
    k = max(2, min(folds, int(y.sum()), int(len(y) - y.sum())))
    for keep, held in StratifiedKFold(k, shuffle=True, random_state=seed).split(p, y):
        out[held] = fit_finding(p[keep], y[keep], method)(p[held])
    return out


def reliability_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "",
                       bins: int = 10) -> Path:
    """A reliability diagram (one line per named curve, the diagonal, ECE in the legend) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1, label="perfectly calibrated")
    for name, (p, y) in curves.items():
        rows = reliability(p, y, bins)
        ax.plot([r.mean_probability for r in rows], [r.positive_rate for r in rows], marker="o",
                label=f"{name} (ECE {ece(p, y, bins):.3f})")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed share positive")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
