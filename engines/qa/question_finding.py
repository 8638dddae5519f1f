"""Which single finding a yes/no question asks about, so the backbone's finding head can answer it.

"Is there pneumonia?", "Any effusion?", "Is the heart enlarged?" ask about one finding; "Is this chest
radiograph normal?" asks about No Finding. Questions about two findings, a negated finding, a side or a
place ("Is the left lung clear?") are not one finding's presence and are left to the generative answer.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from engines.labeler import label_report

_NORMAL = re.compile(r"\b(normal|unremarkable)\b", re.I)
_PLACE = re.compile(r"\b(left|right|upper|lower|middle|apex|apical|base|basal|bilateral|where|which|how)\b", re.I)


def question_finding(question: str, findings: Collection[str]) -> str | None:
    """The one finding of `findings` whose presence the question asks about, else None."""
    if not question or not question.strip() or _PLACE.search(question):
        return None
    states = label_report(question).findings
    asked = [f for f, s in states.items() if f != "No Finding" and s in (1, -1)]
    negated = [f for f, s in states.items() if f != "No Finding" and s == 0]
    if negated or len(asked) > 1:
        return None
    if asked:
        return asked[0] if asked[0] in findings else None
    if _NORMAL.search(question) and "No Finding" in findings:
        return "No Finding"
    return None
