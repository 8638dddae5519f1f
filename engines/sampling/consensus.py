"""Consensus drafting (minimum Bayes risk over findings): sample K drafts, keep the one whose findings
agree most with the others.

One sampled draft commits to every finding by a single draw, so a finding the model gives 20 % is
written one time in five; across 14 findings almost every draft asserts something. The draft closest
to the K-sample consensus keeps what the samples agree on and drops what comes and goes. Agreement is
measured on the labeler's findings (present / absent / uncertain), not on words, so two wordings of the
same finding agree. Ties go to the draft the model was most confident in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from engines.labeler import FINDINGS, label_report


def _states(found: Mapping[str, int | None]) -> tuple[int, ...]:
    return tuple(int(found.get(f, 0) or 0) for f in FINDINGS)  # 1 present, -1 uncertain, 0 absent/negated


def consensus_index(texts: Sequence[str], confidences: Sequence[float] | None = None) -> tuple[int, float]:
    """(index of the consensus draft, its mean agreement with the others over findings, 0..1)."""
    if not texts:
        raise ValueError("consensus needs at least one draft")
    return _consensus([label_report(t).findings for t in texts], confidences)


def _consensus(found: Sequence[Mapping[str, int | None]], confidences: Sequence[float] | None) -> tuple[int, float]:
    """consensus_index on the drafts' labelled findings."""
    if len(found) == 1:
        return 0, 1.0
    states = [_states(f) for f in found]
    n, m = len(states), len(FINDINGS)
    agree = [sum(sum(a == b for a, b in zip(states[i], states[j], strict=True)) for j in range(n) if j != i)
             / ((n - 1) * m) for i in range(n)]
    conf = list(confidences) if confidences is not None else [0.0] * n
    best = max(range(n), key=lambda i: (agree[i], conf[i], -i))
    return best, float(agree[best])


def verified_index(texts: Sequence[str], finding_probs: Mapping[str, float],
                   confidences: Sequence[float] | None = None,
                   thresholds: Mapping[str, float] | None = None) -> tuple[int, float]:
    """(index of the draft whose stated findings the model's finding head supports most, its score).

    A sampled draft picks each finding by one draw from text positions that read the image weakly; the head
    reads the same image-token states as a classifier (engines.models.config `findings`). Each head finding
    scores (2y - 1) * (logit p - logit threshold): stating a finding the head puts above its threshold, or
    leaving out one below it, gains. With 0.5 thresholds this ranks drafts by the head's likelihood of their
    findings; with the training prevalence as thresholds a rare finding counts once the head finds it more
    likely than usual. A finding the labeler calls uncertain counts as half stated. Ties go to consensus
    agreement, then confidence."""
    if not texts:
        raise ValueError("verified selection needs at least one draft")
    if not finding_probs:
        raise ValueError("verified selection needs the finding head's probabilities")
    eps = 1e-4

    def logit(p: float) -> float:
        p = min(max(float(p), eps), 1 - eps)
        return math.log(p / (1 - p))

    labelled = [label_report(t).findings for t in texts]
    scores = []
    for found in labelled:
        total = 0.0
        for name, p in finding_probs.items():
            s = found.get(name, 0) or 0
            y = 0.5 if s == -1 else float(s == 1)
            total += (2 * y - 1) * (logit(p) - logit((thresholds or {}).get(name, 0.5)))
        scores.append(total / len(finding_probs))
    best_consensus, _ = _consensus(labelled, confidences)
    conf = list(confidences) if confidences is not None else [0.0] * len(texts)
    best = max(range(len(texts)), key=lambda i: (round(scores[i], 9), i == best_consensus, conf[i], -i))
    return best, float(scores[best])


SELECTIONS = ("consensus", "verified", "verified-prior")


def select_draft(texts: Sequence[str], confidences: Sequence[float] | None = None, *, mode: str = "consensus",
                 finding_probs: Mapping[str, float] | None = None,
                 finding_prior: Mapping[str, float] | None = None) -> tuple[int, float]:
    """One of K drafts by `mode`: "consensus" (consensus_index), "verified" (verified_index at 0.5, needs the
    finding head's probabilities for the image) or "verified-prior" (thresholds at the training prevalence
    `finding_prior`)."""
    if mode == "consensus":
        return consensus_index(texts, confidences)
    if mode == "verified":
        return verified_index(texts, finding_probs or {}, confidences)
    if mode == "verified-prior":
        if not finding_prior:
            raise ValueError("verified-prior selection needs the findings' training prevalence (finding_prior)")
        return verified_index(texts, finding_probs or {}, confidences, thresholds=finding_prior)
    raise ValueError(f"unknown draft selection {mode!r}; choose one of {SELECTIONS}")
