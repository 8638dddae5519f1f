"""Self-consistency of a report: does the labeler find one finding present in one sentence and absent in
another (the impression contradicting the findings is one case of it)?

The same rate on real IU reports is the reference: it counts the labeler's own false alarms (a real report
that says "no focal consolidation" and "left basilar consolidation" about two regions is flagged too).
"""

from __future__ import annotations

from collections.abc import Sequence

from engines.labeler.label import label_report


def contradictions(text: str) -> list[tuple[str, str, str]]:
    """(finding, sentence stating it present, sentence stating it absent) for every such pair."""
    sents = label_report(text or "").sentences
    out = []
    for f in {f for s in sents for f in s.findings if f != "No Finding"}:
        pos = [s.text for s in sents if s.findings.get(f) == 1]
        neg = [s.text for s in sents if s.findings.get(f) == 0]
        if pos and neg:
            out.append((f, pos[0], neg[0]))
    return sorted(out)


def is_inconsistent(text: str) -> bool:
    return bool(contradictions(text))


def inconsistency_flags(texts: Sequence[str]) -> list[bool]:
    return [is_inconsistent(t) for t in texts]
