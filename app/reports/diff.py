"""Word-level difference between the AI draft and the current text, as HTML with colours.

Kept free of Qt (the editor shows the HTML in a QTextBrowser) so the diff itself is unit-tested.
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)
_WORD = re.compile(r"\w")
INSERT_STYLE = "background:#d4f7d4;color:#0b5d0b;"
DELETE_STYLE = "background:#fbd5d5;color:#8b1010;text-decoration:line-through;"


@dataclass(frozen=True)
class DiffStats:
    inserted_words: int
    deleted_words: int
    unchanged_words: int

    @property
    def changed(self) -> bool:
        return bool(self.inserted_words or self.deleted_words)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def diff_html(before: str, after: str) -> tuple[str, DiffStats]:
    """HTML showing deletions struck through in red and insertions in green, plus word counts."""
    a, b = tokens(before), tokens(after)
    out: list[str] = []
    ins = dels = same = 0

    def words(seq: list[str]) -> int:
        return sum(1 for t in seq if _WORD.match(t))

    def esc(seq: list[str]) -> str:
        return html.escape("".join(seq)).replace("\n", "<br>")

    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(esc(a[i1:i2]))
            same += words(a[i1:i2])
            continue
        if op in ("delete", "replace"):
            out.append(f'<span style="{DELETE_STYLE}">{esc(a[i1:i2])}</span>')
            dels += words(a[i1:i2])
        if op in ("insert", "replace"):
            out.append(f'<span style="{INSERT_STYLE}">{esc(b[j1:j2])}</span>')
            ins += words(b[j1:j2])
    return "".join(out), DiffStats(ins, dels, same)


def sections_diff_html(ai: dict[str, str], current: dict[str, str]) -> tuple[str, DiffStats]:
    """Diff per AI-drafted section (findings, impression) with headings."""
    parts, total = [], DiffStats(0, 0, 0)
    for key in ("findings", "impression"):
        body, st = diff_html(ai.get(key, ""), current.get(key, ""))
        parts.append(f"<h4 style='margin:6px 0 2px 0'>{key.title()}</h4><div>{body or '<i>(empty)</i>'}</div>")
        total = DiffStats(total.inserted_words + st.inserted_words, total.deleted_words + st.deleted_words,
                          total.unchanged_words + st.unchanged_words)
    return "".join(parts), total
