"""Report text <-> the engine's text row: which row positions hold which characters of the report.

The pipeline turns a report into one fixed-length row ([FINDINGS] findings [IMPRESSION] impression
[SEP] [PAD]...). Maps and likelihoods are per sentence, and sentences are character spans of the text
the radiologist sees, so every row position needs the span of the report it came from. The tokenizer's
own offsets give that exactly (its normaliser only lower-cases), so no fuzzy matching is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engines.tokenizers.text import FINDINGS, IMPRESSION, SEP, TextTokenizer

_IMPRESSION_SPLIT = re.compile(r"\bimpression\s*:", re.IGNORECASE)
_FINDINGS_LABEL = re.compile(r"^\s*findings\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class ReportRow:
    """The row the model reads for `text`, and per row position the [start, end) span it covers
    (None for section markers, [SEP] and padding)."""

    text: str
    ids: list[int]
    spans: list[tuple[int, int] | None]

    def positions(self, start: int, end: int) -> list[int]:
        """Row positions whose characters overlap the report span [start, end)."""
        return [k for k, sp in enumerate(self.spans) if sp is not None and sp[0] < end and start < sp[1]]


def _section(report: str, a: int, b: int) -> tuple[str, int]:
    """The stripped text of report[a:b] and the offset of its first character."""
    raw = report[a:b]
    lead = len(raw) - len(raw.lstrip())
    return raw.strip(), a + lead


def _encode(tok: TextTokenizer, text: str, offset: int) -> tuple[list[int], list[tuple[int, int]]]:
    if not text:
        return [], []
    enc = tok.tk.encode(text, add_special_tokens=False)
    spans = []
    for s, e in enc.offsets:  # Metaspace offsets include the space before a word: drop it
        while s < e - 1 and text[s].isspace():
            s += 1
        spans.append((offset + s, offset + e))
    return list(enc.ids), spans


def align_report(tok: TextTokenizer, report: str, text_len: int) -> ReportRow:
    """Build the row exactly as `MedimPipeline` does (same section split and truncation) with spans."""
    if not isinstance(report, str) or not report.strip():
        raise ValueError("report text is empty")
    m = _IMPRESSION_SPLIT.search(report)
    f_end = m.start() if m else len(report)
    lab = _FINDINGS_LABEL.match(report[:f_end])
    f_text, f_off = _section(report, lab.end() if lab else 0, f_end)
    i_text, i_off = _section(report, m.end(), len(report)) if m else ("", len(report))
    f_ids, f_sp = _encode(tok, f_text, f_off)
    i_ids, i_sp = _encode(tok, i_text, i_off)
    budget = text_len - 3
    if len(f_ids) + len(i_ids) > budget:  # same rule as engines.diffusion.layout.report_row
        n_i = max(budget // 3, budget - len(f_ids))
        i_ids, i_sp = i_ids[:n_i], i_sp[:n_i]
        f_ids, f_sp = f_ids[: budget - len(i_ids)], f_sp[: budget - len(i_ids)]
    ids = [tok.ids[FINDINGS], *f_ids, tok.ids[IMPRESSION], *i_ids, tok.ids[SEP]]
    spans: list[tuple[int, int] | None] = [None, *f_sp, None, *i_sp, None]
    pad = text_len - len(ids)
    return ReportRow(report, ids + [tok.pad_id] * pad, spans + [None] * pad)
