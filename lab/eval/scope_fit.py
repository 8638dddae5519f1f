"""Fit and measure the input gate (engines.scope): the lab side of `radstation-eval scope fit|measure`.

Fit, on the train split only: the mean and shrunk (Ledoit-Wolf) covariance of the frontal radiographs'
embeddings; the out-of-distribution threshold as the (100 - reject_percent)th percentile of their
out-of-fold scores (5 folds), so about reject_percent % of unseen frontal radiographs are turned away; and
the frontal-chest check, a logistic regression of frontal radiographs against lateral views and
rotated/inverted/cropped frontal radiographs, thresholded the same way on its out-of-fold probabilities.

Measure, on the val split (or any split never fitted on): AUROC of the gate's combined score for in-scope
frontal radiographs against every out-of-scope category (lab.eval.scope_sets), and the decisions at
the shipped thresholds, header rules included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from engines.scope.gate import InputGate
from engines.scope.stats import ScopeStatistics
from lab.eval.auroc import auroc
from lab.eval.scope_sets import (
    TRANSFORM_KINDS,
    ScopeImage,
    ScopeSets,
    measurement_sets,
    split_samples,
    transformed_images,
)

Progress = Callable[[str, int, int], None] | None


def embed_all(embed: Callable[[Sequence[np.ndarray]], np.ndarray], images: Sequence[np.ndarray],
              stage: str = "", progress: Progress = None, batch: int = 64) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch):
        out.append(np.asarray(embed(list(images[i:i + batch])), np.float32))
        if progress is not None:
            progress(stage, min(i + batch, len(images)), len(images))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    return np.array_split(np.random.default_rng(seed).permutation(n), k)


def fit_ood(emb: np.ndarray, reject_percent: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean, precision, threshold): Ledoit-Wolf on all rows; threshold from 5-fold out-of-fold scores."""
    from sklearn.covariance import LedoitWolf

    d = emb.shape[1]
    oof = np.zeros(len(emb))
    for held in _folds(len(emb), 5, seed):
        keep = np.setdiff1d(np.arange(len(emb)), held)
        lw = LedoitWolf().fit(emb[keep])
        oof[held] = lw.mahalanobis(emb[held]) / d
    lw = LedoitWolf().fit(emb)
    return lw.location_, lw.precision_, float(np.percentile(oof, 100 - reject_percent))


def fit_frontal(pos: np.ndarray, neg: np.ndarray, reject_percent: float, seed: int = 0, c: float = 1.0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float, dict[str, float]]:
    """(mean, scale, weights, bias, threshold, out-of-fold rates) of the frontal-chest logistic regression."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([pos, neg]).astype(np.float64)
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd

    def model() -> LogisticRegression:
        return LogisticRegression(C=c, max_iter=5000, class_weight="balanced")

    oof = np.zeros(len(x))
    for held in _folds(len(x), 5, seed):
        keep = np.setdiff1d(np.arange(len(x)), held)
        oof[held] = model().fit(z[keep], y[keep]).predict_proba(z[held])[:, 1]
    threshold = float(min(0.5, np.percentile(oof[y == 1], reject_percent)))
    clf = model().fit(z, y)
    rates = {"frontal_rejected_oof": float((oof[y == 1] < threshold).mean()),
             "negatives_passed_oof": float((oof[y == 0] >= threshold).mean())}
    return mu, sd, clf.coef_[0].astype(np.float64), float(clf.intercept_[0]), threshold, rates


def fit_scope(embed: Callable[[Sequence[np.ndarray]], np.ndarray], embedding_name: str, *, root=None,
              reject_percent: float = 2.0, transformed_per_kind: int = 600, seed: int = 0,
              progress: Progress = None) -> ScopeStatistics:
    """The gate's statistics from the train split (see the module docstring)."""
    t0 = time.perf_counter()
    frontal, lateral = split_samples("train", root)
    if len(frontal) < 50:
        raise ValueError(f"only {len(frontal)} frontal train radiographs: too few to fit the input gate")
    rng = np.random.default_rng(seed)
    pos = embed_all(embed, [s.load_image() for s in frontal], "train frontal", progress)
    subset = [frontal[i] for i in rng.choice(len(frontal), min(transformed_per_kind, len(frontal)), replace=False)]
    negatives: list[ScopeImage] = [ScopeImage(s.load_image(), "lateral", s.image_id) for s in lateral]
    negatives += transformed_images(subset, seed=seed + 1)
    neg = embed_all(embed, [im.pixels for im in negatives], "train negatives", progress)
    mean, precision, ood_t = fit_ood(pos, reject_percent, seed)
    f_mu, f_sd, w, b, f_t, rates = fit_frontal(pos, neg, reject_percent, seed)
    counts = {"frontal": len(frontal), "lateral": len(lateral)}
    for kind in TRANSFORM_KINDS:
        counts[kind] = sum(im.category == kind for im in negatives)
    info = {"fitted_on": {"split": "train", "images": counts, "reject_percent": reject_percent, "seed": seed},
            "fit_rates": rates, "fit_seconds": round(time.perf_counter() - t0, 1)}
    return ScopeStatistics(embedding_name, mean, precision, f_mu, f_sd, w, b, ood_t, f_t, info)


def combined_score(stats: ScopeStatistics, emb: np.ndarray) -> np.ndarray:
    """One number per image, > 1 exactly when an image check rules it out: the larger of the OOD score and
    the frontal check's shortfall, each relative to its threshold."""
    ood = stats.ood_score(emb) / stats.ood_threshold
    frontal = (1 - stats.frontal_probability(emb)) / max(1 - stats.frontal_threshold, 1e-6)
    return np.maximum(ood, frontal)


def measure_scope(embed: Callable[[Sequence[np.ndarray]], np.ndarray], stats: ScopeStatistics, *,
                  split: str = "val", root=None, seed: int = 0, progress: Progress = None,
                  resamples: int = 1000) -> dict[str, Any]:
    """AUROC (in-scope frontal radiographs vs each out-of-scope category and all of them) of the combined image
    score and of its two parts, with a bootstrap 95% interval for all of them together, and the gate's decisions
    (header rules + image checks) at the shipped thresholds."""
    sets = measurement_sets(split, root, seed=seed)
    ins, outs = embed_sets(embed, sets, split, progress)
    return score_scope(stats, sets, ins, outs, split=split, seed=seed, resamples=resamples)


def embed_sets(embed: Callable[[Sequence[np.ndarray]], np.ndarray], sets: ScopeSets, split: str = "val",
               progress: Progress = None) -> tuple[np.ndarray, np.ndarray]:
    """(in-scope, out-of-scope) embeddings of a measurement set: the slow part, kept apart so that one
    embedding pass can be scored against several fits."""
    ins = embed_all(embed, [im.pixels for im in sets.in_scope], f"{split} frontal", progress)
    outs = embed_all(embed, [im.pixels for im in sets.out_of_scope], "out of scope", progress)
    return ins, outs


def score_scope(stats: ScopeStatistics, sets: ScopeSets, ins: np.ndarray, outs: np.ndarray, *, split: str = "val",
                seed: int = 0, resamples: int = 1000) -> dict[str, Any]:
    """The measure_scope table from embeddings already computed (rows in the order of `sets`)."""
    cats = np.array([im.category for im in sets.out_of_scope])
    scores = {"combined": lambda e: combined_score(stats, e), "ood": stats.ood_score,
              "frontal": lambda e: -stats.frontal_probability(e)}
    gate = InputGate(lambda _ims: np.zeros((0, stats.dim)), stats)  # decisions get the embeddings below
    table: dict[str, Any] = {}
    s_in = {k: f(ins) for k, f in scores.items()}
    s_out = {k: f(outs) for k, f in scores.items()}

    def row(mask: np.ndarray, images: list[ScopeImage]) -> dict[str, Any]:
        r: dict[str, Any] = {"n": int(mask.sum())}
        for k in scores:
            y = np.r_[np.zeros(len(ins)), np.ones(int(mask.sum()))]
            r[f"auroc_{k}"] = auroc(y, np.r_[s_in[k], s_out[k][mask]])
        r["passed_image_checks"] = int((s_out["combined"][mask] <= 1).sum())
        passed = 0
        for im, e in zip(images, outs[mask], strict=True):
            passed += gate.check([im.pixels], [im.header or None], embeddings=e[None]).in_scope
        r["passed_gate"] = int(passed)
        return r

    for cat in sorted(set(cats.tolist())):
        mask = cats == cat
        table[cat] = row(mask, [im for im, m in zip(sets.out_of_scope, mask, strict=True) if m])
    table["all out of scope"] = row(np.ones(len(cats), bool), list(sets.out_of_scope))
    groups = [_source_key(im) for im in [*sets.in_scope, *sets.out_of_scope]]
    for k in scores:
        table["all out of scope"][f"auroc_{k}_ci"] = auroc_interval(s_in[k], s_out[k], groups, resamples, seed)
    rejected = int((s_in["combined"] > 1).sum())
    return {"split": split, "in_scope": {"n": len(ins), "rejected": rejected, "rejected_share": rejected / len(ins)},
            "categories": table, "ood_threshold": stats.ood_threshold,
            "frontal_threshold": stats.frontal_threshold, "embedding": stats.embedding}


def auroc_interval(s_in: np.ndarray, s_out: np.ndarray, groups: Sequence[str], resamples: int = 1000,
                   seed: int = 0) -> tuple[float, float] | None:
    """Bootstrap 95% interval of AUROC(in vs out) resampling source images: a val radiograph and its rotated,
    inverted and cropped copies (and the slices of one file) are drawn together, since they are not
    independent evidence."""
    from lab.eval.bootstrap import cluster_bootstrap

    if resamples <= 0:
        return None
    y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    s = np.r_[s_in, s_out]
    return cluster_bootstrap(lambda idx: auroc(y[idx], s[idx]), groups, resamples=resamples, seed=seed)


def _source_key(im: ScopeImage) -> str:
    """The image a measurement image was made from: a val radiograph for its rotated/inverted/cropped copies,
    the phantom for its slices, else the image itself."""
    if im.category in TRANSFORM_KINDS:
        return im.source.split(" ")[0]
    if im.source.startswith("demo phantom"):
        return "demo phantom"
    return im.source


def markdown(result: dict[str, Any]) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    ins = result["in_scope"]
    lines = [f"Input gate on the {result['split']} split (embedding {result['embedding']}; thresholds: OOD "
             f"{result['ood_threshold']:.2f}, frontal check {result['frontal_threshold']:.2f})", "",
             f"In scope: {ins['n']} frontal radiographs, {ins['rejected']} turned away by the image checks "
             f"({ins['rejected_share']:.1%}).", "",
             "| out of scope | n | AUROC combined | AUROC OOD | AUROC frontal check | passed image checks "
             "| passed the gate (header + image) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for cat, r in result["categories"].items():
        lines.append(f"| {cat} | {r['n']} | {fmt(r['auroc_combined'])} | {fmt(r['auroc_ood'])} | "
                     f"{fmt(r['auroc_frontal'])} | {r['passed_image_checks']} | {r['passed_gate']} |")
    every = result["categories"].get("all out of scope", {})
    cis = [(k, every.get(f"auroc_{k}_ci")) for k in ("combined", "ood", "frontal")]
    if any(ci for _k, ci in cis):
        lines += ["", "Bootstrap 95% intervals, all out of scope (source images resampled with their copies): "
                  + "; ".join(f"{k} {fmt(every.get(f'auroc_{k}'))} ({ci[0]:.3f}-{ci[1]:.3f})"
                              for k, ci in cis if ci)]
    return "\n".join(lines)
