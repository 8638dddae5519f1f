"""The text segment's layout: how reports and question/answer pairs become a fixed-length id row.

report: [FINDINGS] findings... [IMPRESSION] impression... [SEP] [PAD]...
qa:     [QUESTION] question... [ANSWER] answer... [SEP] [PAD]...
The model generates [SEP]/[PAD] itself, so it decides the length of what it writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from engines.tokenizers.text import ANSWER, FINDINGS, IMPRESSION, QUESTION, SEP, TextTokenizer


@dataclass(frozen=True)
class TextRow:
    ids: list[int]
    prefix_len: int  # positions fixed as condition (e.g. [QUESTION] q [ANSWER]); 0 for reports


def report_row(tok: TextTokenizer, findings: str, impression: str, length: int) -> TextRow:
    f = tok.encode(findings or "")
    i = tok.encode(impression or "")
    budget = length - 3
    if len(f) + len(i) > budget:  # keep the impression whole where possible: it carries the conclusion
        i = i[: max(budget // 3, budget - len(f))]
        f = f[: budget - len(i)]
    ids = [tok.ids[FINDINGS], *f, tok.ids[IMPRESSION], *i, tok.ids[SEP]]
    return TextRow(ids + [tok.pad_id] * (length - len(ids)), 0)


def qa_row(tok: TextTokenizer, question: str, answer: str | None, length: int, answer_len: int = 24) -> TextRow:
    q = tok.encode(question)[: length - answer_len - 2]
    prefix = [tok.ids[QUESTION], *q, tok.ids[ANSWER]]
    a = tok.encode(answer or "")[: length - len(prefix) - 1]
    ids = prefix + a + [tok.ids[SEP]]
    return TextRow(ids + [tok.pad_id] * (length - len(ids)), len(prefix))


def prompt_row(tok: TextTokenizer, prompt: str, length: int) -> TextRow:
    """Joint synthesis: the prompt opens the findings and stays fixed; the rest is generated."""
    p = tok.encode(prompt)[: length // 2]
    ids = [tok.ids[FINDINGS], *p]
    return TextRow(ids + [tok.pad_id] * (length - len(ids)), len(ids))


def split_report(tok: TextTokenizer, ids: list[int]) -> tuple[list[int], list[int]]:
    """Findings ids and impression ids of a generated row (stops at [SEP]/[PAD])."""
    findings, impression, cur = [], [], None
    for i in ids:
        if i in (tok.ids[SEP], tok.pad_id):
            break
        if i == tok.ids[FINDINGS]:
            cur = findings
            continue
        if i == tok.ids[IMPRESSION]:
            cur = impression
            continue
        if i in tok.special_ids:
            continue
        (cur if cur is not None else findings).append(i)
    return findings, impression
