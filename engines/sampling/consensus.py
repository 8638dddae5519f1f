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


def _states(text: str) -> tuple[int, ...]:
    found = label_report(text).findings
    return tuple(int(found.get(f, 0) or 0) for f in FINDINGS)  # 1 present, -1 uncertain, 0 absent/negated


def consensus_index(texts: Sequence[str], confidences: Sequence[float] | None = None) -> tuple[int, float]:
    """(index of the consensus draft, its mean agreement with the others over findings, 0..1)."""
    if not texts:
        raise ValueError("consensus needs at least one draft")
    if len(texts) == 1:
        return 0, 1.0
    states = [_states(t) for t in texts]
    n, m = len(states), len(FINDINGS)
    agree = [sum(sum(a == b for a, b in zip(states[i], states[j], strict=True)) for j in range(n) if j != i)
             / ((n - 1) * m) for i in range(n)]
    conf = list(confidences) if confidences is not None else [0.0] * n
    best = max(range(n), key=lambda i: (agree[i], conf[i], -i))
    return best, float(agree[best])


def verified_index(texts: Sequence[str], finding_probs: Mapping[str, float],
                   confidences: Sequence[float] | None = None) -> tuple[int, float]:
    """(index of the draft whose stated findings are most likely under the model's finding head, that draft's
    mean log-likelihood per head finding).

    A sampled draft picks each finding by one draw from text positions that read the image weakly; the head
    reads the same image-token states as a classifier (engines.models.config `findings`). Among K drafts, the
    one the head finds most plausible keeps the K-sample fluency and the head's reading of the image. A finding
    the labeler calls uncertain counts as half present; unmentioned counts as absent. Ties go to consensus
    agreement, then confidence."""
    if not texts:
        raise ValueError("verified selection needs at least one draft")
    if not finding_probs:
        raise ValueError("verified selection needs the finding head's probabilities")
    eps = 1e-4
    scores = []
    for t in texts:
        found = label_report(t).findings
        ll = 0.0
        for name, p in finding_probs.items():
            s = found.get(name, 0) or 0
            y = 0.5 if s == -1 else float(s == 1)
            p = min(max(float(p), eps), 1 - eps)
            ll += y * math.log(p) + (1 - y) * math.log(1 - p)
        scores.append(ll / len(finding_probs))
    best_consensus, _ = consensus_index(texts, confidences)
    conf = list(confidences) if confidences is not None else [0.0] * len(texts)
    best = max(range(len(texts)), key=lambda i: (round(scores[i], 9), i == best_consensus, conf[i], -i))
    return best, float(scores[best])


SELECTIONS = ("consensus", "verified")


def select_draft(texts: Sequence[str], confidences: Sequence[float] | None = None, *, mode: str = "consensus",
                 finding_probs: Mapping[str, float] | None = None) -> tuple[int, float]:
    """One of K drafts by `mode`: "consensus" (consensus_index) or "verified" (verified_index, needs the
    finding head's probabilities for the image)."""
    if mode == "consensus":
        return consensus_index(texts, confidences)
    if mode == "verified":
        return verified_index(texts, finding_probs or {}, confidences)
    raise ValueError(f"unknown draft selection {mode!r}; choose one of {SELECTIONS}")
