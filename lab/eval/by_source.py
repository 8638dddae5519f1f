"""Finding AUROC overall, within the NIH images and per source, with patient-level bootstrap intervals.

Issue 28: a reader can score well overall by recognising which collection an image came from (the COVID
collections' figures differ in style and in label prevalence). Within one source that shortcut carries nothing,
so the NIH-only figure (the largest source with exhaustive labels) is the headline. A finding enters a macro
average only with at least `min_positives` positives in that subset, so a three-positive AUROC does not swing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lab.eval.auroc import auroc
from lab.eval.bootstrap import cluster_bootstrap

NIH_SOURCES = ("nih_talo", "nih_zech")


@dataclass
class SubsetScores:
    name: str
    n_images: int
    positives: dict[str, int]
    auroc: dict[str, float | None]
    macro: float | None
    macro_ci: tuple[float, float] | None
    macro_findings: list[str] = field(default_factory=list)
    auroc_ci: dict[str, tuple[float, float] | None] = field(default_factory=dict)


def _macro(truth: np.ndarray, probs: np.ndarray, cols: list[int], idx: np.ndarray) -> float | None:
    vals = [auroc(truth[idx, j], probs[idx, j]) for j in cols]
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if len(vals) == len(cols) and vals else None


def subset_scores(name: str, truth: np.ndarray, probs: np.ndarray, findings: Sequence[str], groups: Sequence[str],
                  *, min_positives: int = 5, resamples: int = 1000, seed: int = 0) -> SubsetScores:
    """Per-finding and macro AUROC of `probs` against `truth` (both (N, K)) with bootstrap intervals."""
    truth = np.asarray(truth, bool)
    probs = np.asarray(probs, np.float64)
    if truth.shape != probs.shape or truth.shape[1] != len(findings):
        raise ValueError(f"truth {truth.shape} and probs {probs.shape} must both be (N, {len(findings)})")
    pos = {f: int(truth[:, j].sum()) for j, f in enumerate(findings)}
    per = {f: auroc(truth[:, j], probs[:, j]) for j, f in enumerate(findings)}
    cols = [j for j, f in enumerate(findings) if min_positives <= pos[f] <= len(truth) - min_positives]
    everything = np.arange(len(truth))
    macro = _macro(truth, probs, cols, everything) if cols else None
    ci = cluster_bootstrap(lambda i: _macro(truth, probs, cols, i), groups, resamples=resamples, seed=seed) \
        if cols else None
    per_ci = {findings[j]: cluster_bootstrap(lambda i, j=j: auroc(truth[i, j], probs[i, j]), groups,
                                             resamples=resamples // 2, seed=seed) for j in cols}
    return SubsetScores(name, len(truth), pos, per, macro, ci, [findings[j] for j in cols], per_ci)


def scores_by_source(truth: np.ndarray, probs: np.ndarray, findings: Sequence[str], sources: Sequence[str],
                     groups: Sequence[str], *, min_positives: int = 5, resamples: int = 1000
                     ) -> list[SubsetScores]:
    """Overall, NIH-only, then each source with any positives: the evaluation table of issue 28."""
    src = np.asarray(sources)
    grp = np.asarray(groups)
    subsets = [("overall", np.ones(len(src), bool)), ("NIH only", np.isin(src, NIH_SOURCES))]
    subsets += [(s, src == s) for s in sorted(set(src.tolist()))]
    out = []
    for name, m in subsets:
        if m.sum() < 2 * min_positives:
            continue
        out.append(subset_scores(name, truth[m], probs[m], findings, grp[m], min_positives=min_positives,
                                 resamples=resamples))
    return out


def source_readability(train_features: np.ndarray, train_sources: Sequence[str], test_features: np.ndarray,
                       test_sources: Sequence[str]) -> float | None:
    """AUROC of telling NIH from non-NIH images by a logistic regression on `features` (fitted on train, scored
    on test): how much of the image source a representation still carries. 0.5 is none."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ytr = np.isin(np.asarray(train_sources), NIH_SOURCES)
    yte = np.isin(np.asarray(test_sources), NIH_SOURCES)
    if ytr.all() or not ytr.any():
        return None
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    clf.fit(np.asarray(train_features, np.float64), ytr)
    return auroc(yte, clf.predict_proba(np.asarray(test_features, np.float64))[:, 1])


def format_table(rows: Sequence[SubsetScores], findings: Sequence[str]) -> str:
    """Markdown: one row per subset, macro with its interval, then per-finding AUROC (n/a below min positives)."""
    head = "| subset | images | macro AUROC (95% CI) | " + " | ".join(findings) + " |"
    lines = [head, "|" + "---|" * (3 + len(findings))]
    for r in rows:
        m = "n/a" if r.macro is None else f"{r.macro:.3f}" + (
            f" ({r.macro_ci[0]:.2f}-{r.macro_ci[1]:.2f})" if r.macro_ci else "")
        cells = []
        for f in findings:
            a = r.auroc.get(f)
            cells.append("-" if a is None or f not in r.macro_findings else f"{a:.2f} ({r.positives[f]})")
        lines.append(f"| {r.name} | {r.n_images} | {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_finding_ci_table(rows: Sequence[SubsetScores], findings: Sequence[str],
                            subsets: Sequence[str] = ("overall", "NIH only")) -> str:
    """Markdown: one row per finding, AUROC with its patient-level bootstrap interval in each of `subsets`
    (a macro figure hides which findings the reading barely separates; an interval says which differences are noise)."""
    picked = [r for r in rows if r.name in subsets]
    head = "| finding | " + " | ".join(f"{r.name} AUROC (95% CI), positives" for r in picked) + " |"
    lines = [head, "|" + "---|" * (1 + len(picked))]
    for f in findings:
        cells = []
        for r in picked:
            a, ci = r.auroc.get(f), r.auroc_ci.get(f)
            if a is None or f not in r.macro_findings:
                cells.append(f"- ({r.positives.get(f, 0)})")
            else:
                cells.append(f"{a:.3f} ({ci[0]:.2f}-{ci[1]:.2f}), {r.positives[f]}" if ci else
                             f"{a:.3f}, {r.positives[f]}")
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
