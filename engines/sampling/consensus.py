"""Consensus drafting (minimum Bayes risk over findings): sample K drafts, keep the one whose findings
agree most with the others.

One sampled draft commits to every finding by a single draw, so a finding the model gives 20 % is
written one time in five; across 14 findings almost every draft asserts something. The draft closest
to the K-sample consensus keeps what the samples agree on and drops what comes and goes. Agreement is
measured on the labeler's findings (present / absent / uncertain), not on words, so two wordings of the
same finding agree. Ties go to the draft the model was most confident in.
"""

from __future__ import annotations

from collections.abc import Sequence

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
