"""Calibration of per-finding probabilities: expected calibration error (with bootstrap intervals), reliability
diagrams, and fitting the runtime calibration (engines.calibration) by temperature, Platt or isotonic regression.

Any reader plugs in: the functions take (probabilities, labels) per finding. `radstation-eval calibration`
runs them on the built-in engine's reading; ECE of a fitted calibration is reported out of fold (fit on k-1
folds, scored on the held-out one), so the number is not the fit scoring itself. `select_calibration` chooses
each finding's method by grouped cross-validation (whole patients per fold) on out-of-fold *train*
probabilities, so the shipped calibration never sees val.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.calibration import DEFAULT_BAND, METHODS, Calibration, FindingCalibration, _logit
from lab.eval.bootstrap import cluster_bootstrap


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
    if method == "identity":
        return FindingCalibration("identity", {})
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


# Order of preference on a tie: the simpler map wins unless a richer one scores better held out.
SELECTABLE = ("identity", "temperature", "platt", "isotonic")


def log_loss(probs: np.ndarray, labels: np.ndarray, eps: float = 1e-4) -> float:
    """Mean negative log likelihood, probabilities clipped to [eps, 1 - eps] (an isotonic step at exactly 0 or 1
    that meets the other label costs log(eps), not infinity)."""
    q = np.clip(np.asarray(probs, np.float64), eps, 1 - eps)
    y = np.asarray(labels, np.float64)
    return float(-(y * np.log(q) + (1 - y) * np.log(1 - q)).mean())


def grouped_folds(labels: np.ndarray, groups: Sequence, folds: int, seed: int = 0) -> np.ndarray:
    """Fold index per row: whole groups (patients) per fold, positives spread over the folds."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(labels).astype(int)
    out = np.empty(len(y), int)
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    for f, (_, held) in enumerate(splitter.split(np.zeros(len(y)), y, np.asarray(groups))):
        out[held] = f
    return out


def grouped_out_of_fold(probs: np.ndarray, labels: np.ndarray, groups: Sequence, method: str, folds: int = 5,
                        seed: int = 0) -> np.ndarray:
    """Calibrated probabilities where each row's calibration was fitted without its patient's rows."""
    p = np.asarray(probs, np.float64)
    y = np.asarray(labels).astype(int)
    fold = grouped_folds(y, groups, folds, seed)
    out = np.empty_like(p)
    for f in np.unique(fold):
        keep, held = fold != f, fold == f
        if len(np.unique(y[keep])) < 2:  # a fold that took every positive: nothing to fit on, leave it as read
            out[held] = p[held]
        else:
            out[held] = fit_finding(p[keep], y[keep], method)(p[held])
    return out


@dataclass(frozen=True)
class FindingChoice:
    """The method chosen for one finding, its calibration fitted on all rows, and what each method scored out of
    fold (held-out log loss and ECE)."""

    finding: str
    method: str
    calibration: FindingCalibration
    positives: int
    n: int
    cv: dict[str, dict[str, float]] = field(default_factory=dict)


def choose_finding(finding: str, probs: np.ndarray, labels: np.ndarray, groups: Sequence,
                   methods: Sequence[str] = SELECTABLE, folds: int = 5, seed: int = 0,
                   min_positives: int = 5) -> FindingChoice:
    """The method with the lowest held-out log loss over grouped folds (ties to the simpler one), refitted on all
    rows. Fewer than `min_positives` positives (or negatives): identity, nothing can be judged."""
    p = np.asarray(probs, np.float64)
    y = np.asarray(labels).astype(int)
    pos = int(y.sum())
    if min(pos, len(y) - pos) < min_positives:
        return FindingChoice(finding, "identity", FindingCalibration("identity", {}), pos, len(y))
    k = max(2, min(folds, pos, len(y) - pos))
    cv = {}
    for m in methods:
        oof = grouped_out_of_fold(p, y, groups, m, k, seed)
        cv[m] = {"log_loss": log_loss(oof, y), "ece": ece(oof, y)}
    best = min(methods, key=lambda m: (round(cv[m]["log_loss"], 5), list(methods).index(m)))
    return FindingChoice(finding, best, fit_finding(p, y, best), pos, len(y), cv)


def select_calibration(probs: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], groups: Sequence,
                       methods: Sequence[str] = SELECTABLE, folds: int = 5, seed: int = 0, min_positives: int = 5,
                       band: tuple[float, float] = DEFAULT_BAND, no_odds_ratio: float | None = None,
                       info: dict[str, Any] | None = None) -> tuple[Calibration, dict[str, FindingChoice]]:
    """Per finding, `choose_finding`; the Calibration records every choice and its cross-validation scores, and
    each finding's prevalence in these labels (what the "no" rule compares a calibrated probability with)."""
    choices = {k: choose_finding(k, probs[k], labels[k], groups, methods, folds, seed, min_positives) for k in probs}
    meta = dict(info or {})
    meta["selection"] = {k: {"method": c.method, "positives": c.positives, "images": c.n,
                             "cv": {m: {s: round(v, 5) for s, v in d.items()} for m, d in c.cv.items()}}
                         for k, c in choices.items()}
    extra = {} if no_odds_ratio is None else {"no_odds_ratio": float(no_odds_ratio)}
    prevalence = {k: float(np.mean(labels[k])) for k in probs if 0 < float(np.mean(labels[k])) < 1}
    return Calibration({k: c.calibration for k, c in choices.items()}, band, meta, prevalence=prevalence,
                       **extra), choices


def bootstrap_ece(probs: np.ndarray, labels: np.ndarray, groups: Sequence, resamples: int = 1000, seed: int = 0,
                  bins: int = 10, level: float = 0.95) -> tuple[float, float, float]:
    """(ECE, low, high): a percentile interval over resamples of whole groups (patients) with replacement."""
    p = np.asarray(probs, np.float64)
    y = np.asarray(labels, np.float64)
    low, high = cluster_bootstrap(lambda idx: ece(p[idx], y[idx], bins), groups, resamples=resamples, seed=seed,
                                  level=level)  # an ECE is defined on every resample: never None
    return ece(p, y, bins), low, high


def judge_ece(point: float, low: float, high: float, target: float = 0.05) -> str:
    """Whether an ECE can be judged against the target: 'within' (the whole interval at or below), 'above' (the
    estimate and the whole interval above) or 'too wide to judge'. A resample of even a perfectly calibrated score
    has a positive ECE, so the percentile interval leans high (it can sit wholly above a small estimate): an
    interval above the target with the estimate at or below it is not called 'above'."""
    if high <= target:
        return "within"
    if low > target and point > target:
        return "above"
    return "too wide to judge"


def reliability_grid(panels: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], path: str | Path,
                     title: str = "", bins: int = 10) -> Path:
    """One small reliability diagram per finding (each with its named curves, the diagonal and ECE), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    cols = min(4, max(n, 1))
    rows_n = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.1 * cols, 3.1 * rows_n), dpi=100, squeeze=False)
    for ax, (name, curves) in zip(axes.ravel(), panels.items(), strict=False):
        ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1)
        for label, (p, y) in curves.items():
            rb = reliability(p, y, bins)
            ax.plot([r.mean_probability for r in rb], [r.positive_rate for r in rb], marker="o", markersize=3,
                    label=f"{label} {ece(p, y, bins):.3f}")
        pos = int(np.asarray(next(iter(curves.values()))[1]).sum()) if curves else 0
        ax.set_title(f"{name} ({pos} positive)", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6, loc="upper left", title="ECE", title_fontsize=6)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.supxlabel("predicted probability", fontsize=8)
    fig.supylabel("observed share positive", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


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
