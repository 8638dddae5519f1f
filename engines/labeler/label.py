"""Report text -> CheXpert findings (1 positive, 0 negative, -1 uncertain), per sentence and per report."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engines.labeler.context import find_triggers, polarity
from engines.labeler.findings import FINDINGS, MENTION_PATTERNS, NORMAL_PATTERNS, PATHOLOGIES

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+|(?<=\.)(?=[A-Z][a-z])")
# "Lines and tubes:" - a structured line's heading; with nothing after it (a template's field not yet filled in)
# the line states nothing, and a finding named in the heading is not asserted.
_HEADING = re.compile(r"\s*[A-Za-z][A-Za-z /&,()-]{0,60}:")


@dataclass(frozen=True)
class Mention:
    finding: str
    start: int  # offsets into the whole text
    end: int
    value: int


@dataclass(frozen=True)
class SentenceLabels:
    """One sentence, its [start, end) offsets in the labelled text, and the findings it speaks of."""

    text: str
    start: int
    end: int
    findings: dict[str, int]
    mentions: tuple[Mention, ...] = ()


@dataclass(frozen=True)
class LabelResult:
    findings: dict[str, int]
    sentences: list[SentenceLabels] = field(default_factory=list)

    @property
    def positives(self) -> list[str]:
        return [f for f in FINDINGS if self.findings.get(f) == 1]

    @property
    def is_normal(self) -> bool:
        return self.findings.get("No Finding") == 1


def split_sentences(text: str) -> list[tuple[int, int]]:
    """[start, end) spans of the sentences of ``text`` (whitespace trimmed, empty ones dropped)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a and re.search(r"[A-Za-z]", text[a:b]):
            out.append((a, b))
    return out


def _combine(values: list[int]) -> int:
    """CheXpert's aggregation: any positive wins, then uncertain, then negative."""
    if 1 in values:
        return 1
    if -1 in values:
        return -1
    return 0


def _label_sentence(sentence: str, offset: int) -> SentenceLabels:
    heading = _HEADING.match(sentence)
    if heading is not None and not re.search(r"[A-Za-z0-9]", sentence[heading.end():]):
        return SentenceLabels(sentence, offset, offset + len(sentence), {}, ())
    triggers, terms = find_triggers(sentence)
    mentions: list[Mention] = []
    normal_spans: dict[str, list[tuple[int, int]]] = {}
    for finding, patterns in NORMAL_PATTERNS.items():
        for rx in patterns:
            for m in rx.finditer(sentence):
                normal_spans.setdefault(finding, []).append(m.span())
                # "heart size is normal" is a plain negative; a hedge before it ("may be normal") is kept.
                value = polarity(sentence, m.start(), m.end(), [t for t in triggers if t.kind == "unc"], terms)
                mentions.append(Mention(finding, offset + m.start(), offset + m.end(), 0 if value == 1 else -1))
    for finding, patterns in MENTION_PATTERNS.items():
        seen: list[tuple[int, int]] = []
        for rx in patterns:
            for m in rx.finditer(sentence):
                a, b = m.span()
                if any(a < sb and sa < b for sa, sb in seen):
                    continue
                if any(a < nb and na < b for na, nb in normal_spans.get(finding, [])):
                    continue
                if any(t.start <= a and b <= t.end for t in triggers):
                    continue  # the word is part of a trigger phrase
                seen.append((a, b))
                mentions.append(Mention(finding, offset + a, offset + b, polarity(sentence, a, b, triggers, terms)))
    findings: dict[str, int] = {}
    for f in FINDINGS:
        vals = [m.value for m in mentions if m.finding == f]
        if vals:
            findings[f] = _combine(vals)
    mentions.sort(key=lambda m: m.start)
    return SentenceLabels(sentence, offset, offset + len(sentence), findings, tuple(mentions))


def label_report(text: str) -> LabelResult:
    """Label a report (findings + impression, or any free text).

    No Finding is 1 when no pathology is positive or uncertain (CheXpert's rule; Support Devices do not
    count), and absent otherwise."""
    text = text or ""
    sentences = [_label_sentence(text[a:b], a) for a, b in split_sentences(text)]
    findings: dict[str, int] = {}
    for f in FINDINGS:
        vals = [s.findings[f] for s in sentences if f in s.findings]
        if vals:
            findings[f] = _combine(vals)
    findings.pop("No Finding", None)
    if not any(findings.get(p) in (1, -1) for p in PATHOLOGIES):
        findings = {"No Finding": 1, **findings}
    ordered = {f: findings[f] for f in FINDINGS if f in findings}
    return LabelResult(ordered, sentences)
