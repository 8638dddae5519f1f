"""A compact ConText-style scope engine: negation and uncertainty triggers with per-sentence scope.

Why our own: medspacy's ConText pins a spaCy that breaks against numpy 2 here (see ENVIRONMENT.md). The
rules follow ConText/NegEx: a *pre* trigger ("no", "possible") governs mentions after it, a *post* trigger
("is not seen", "cannot be excluded") governs mentions before it, a *terminator* ("but", "however") ends a
scope, and *pseudo* triggers ("no change", "not only") are removed first so they govern nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Polarity = Literal[1, 0, -1]

#: Scope length in words for pre triggers (lists like "no effusion, pneumothorax or consolidation").
PRE_SCOPE_WORDS: Final[int] = 14
POST_SCOPE_WORDS: Final[int] = 8


def _rx(*phrases: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(phrases) + r")\b", re.I)


PSEUDO: Final = _rx(
    r"no\s+(?:significant\s+|interval\s+|substantial\s+)?(?:change|increase|decrease|worsening|improvement)",
    r"not\s+(?:only|necessarily|significantly\s+changed)",
    r"without\s+(?:significant\s+|interval\s+)?change",
    r"no\s+longer\s+(?:seen|visualized|present)?",  # handled as post-negation below when followed by seen
    r"gram\s+negative",
    r"not\s+been\s+(?:changed)",
)

PRE_UNCERTAIN: Final = _rx(
    r"(?:can\s*not|cannot|can't|could\s+not|not)\s+(?:be\s+)?(?:exclude[ds]?|excluded|rule[ds]?\s+out|ruled\s+out)",
    r"may(?:\s+be|\s+represent|\s+reflect|\s+have)?",
    r"might|could(?:\s+be|\s+represent|\s+reflect)?",
    r"possib(?:le|ly|ility)",
    r"probabl[ey]",
    r"likely|unlikely",
    r"suspect(?:ed)?|suspicious(?:\s+for)?",
    r"questionabl[ey]|question\s+of|questioned",
    r"concern(?:ing)?(?:\s+for)?",
    r"suggest(?:s|ed|ing|ive)?(?:\s+of)?",
    r"consider(?:ed)?|differential(?:\s+diagnosis)?|versus|vs\.?",
    r"equivocal|indeterminate|uncertain|borderline",
    r"compatible\s+with",
    r"cannot\s+be\s+(?:entirely\s+)?(?:excluded|ruled\s+out)",
    r"(?:evaluate|assess)\s+for|rule\s+out|r/o",
    r"(?:developing|underlying|superimposed)",
)

POST_UNCERTAIN: Final = _rx(
    r"(?:can\s*not|cannot|can't|could\s+not|may\s+not)\s+be\s+(?:entirely\s+|completely\s+)?(?:excluded|ruled\s+out)",
    r"(?:is|are)\s+not\s+(?:entirely\s+)?(?:excluded|ruled\s+out)",
    r"(?:is|are)\s+(?:possible|suspected|questioned|likely|not\s+excluded)",
    r"not\s+excluded",
    r"versus|vs\.?",
    r"(?:is|are)\s+(?:in|on)\s+the\s+differential",
    r"(?:is|are|be)\s+(?:a\s+)?(?:consideration|considered)",
    r"(?:is|are)\s+(?:not\s+)?(?:likely|unlikely|suspected|favored|questionable)",
)

PRE_NEGATION: Final = _rx(
    r"no",
    r"not",
    r"without",
    r"negative\s+for",
    r"free\s+of",
    r"absen(?:t|ce)\s+of",
    r"rule[ds]?\s+out\s+(?:for\s+)?",
    r"resolving|resolution\s+of|clear(?:ed|ing)?\s+of|interval\s+clearing\s+of",
    r"no\s+(?:evidence|signs?|findings?|suggestion|definite|convincing|acute|visible|radiographic|focal)\s+(?:of\s+)?",
    r"neither|nor",
    r"removal\s+of",
    r"never",
    r"(?:is|are)\s+(?:clear|negative)\s+(?:of|for)",
    r"(?:has|have)\s+been\s+removed",
    # hypothetical (ConText's category): the finding is not asserted
    r"if(?:\s+there\s+is)?",
    r"(?:to|would)\s+exclude",
)

#: Words that negate on either side: "resolved consolidation" and "consolidation has resolved".
BOTH_NEGATION: Final = _rx(r"resolved", r"cleared", r"removed")

POST_NEGATION: Final = _rx(
    r"(?:is|are|was|were|has|have)\s+(?:been\s+)?(?:not\s+(?:seen|identified|present|visualized|evident|demonstrated|appreciated)|absent|resolved|cleared|removed)",
    r"(?:has|have)\s+(?:since\s+)?(?:resolved|cleared|been\s+removed|disappeared)",
    r"(?:is|are)\s+no\s+longer\s+(?:seen|present|visualized|evident|identified)",
    r"no\s+longer\s+(?:seen|present|visualized|evident|identified)",
    r"(?:not|un)\s*(?:seen|identified|appreciated)",
    r"not\s+(?:present|demonstrated|evident|visualized)",
    r"free",
    r"may\s+not\s+be\s+(?:demonstrated|seen|visible|detected|apparent)",
    # a structured report's heading answered "none": "Lines and tubes: none.", "Pneumothorax: absent.", a
    # template's unfilled pick-list "[none|...]"
    r":\s*\[?\s*(?:none|nil|absent|negative|not\s+(?:seen|identified|present))",
)

#: Hedge words that a preceding negation overrides: "no pleural line to suggest pneumothorax",
#: "no suspicious pulmonary opacity".
WEAK_UNCERTAIN: Final = _rx(
    r"suggest\w*(?:\s+of)?",
    r"suspicious(?:\s+for)?",
    r"concern\w*(?:\s+for)?",
    r"compatible\s+with",
    r"(?:evaluate|assess)\s+for",
    r"developing|underlying|superimposed",
)

TERMINATORS: Final = _rx(
    r"but",
    r"however",
    r"although",
    r"though",
    r"yet",
    r"except(?:\s+for)?",
    r"aside\s+from",
    r"apart\s+from",
    r"other\s+than",
    r"which",
    r"who",
    r"there\s+(?:is|are|has\s+been|have\s+been)(?!\s+no\b)",
    r"otherwise",
    r"with\s+(?:the\s+)?exception",
    r"while",
    r"whereas",
    r"secondary\s+to|due\s+to|related\s+to|causing|cause\s+of",
    r"concerning|suggest(?:s|ing|ive)",
    r"with",
)


@dataclass(frozen=True)
class Trigger:
    start: int
    end: int
    kind: Literal["neg", "unc"]
    direction: Literal["pre", "post", "both"]
    weak: bool = False


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for a, b in spans:
        for i in range(a, b):
            chars[i] = " "
    return "".join(chars)


def find_triggers(sentence: str) -> tuple[list[Trigger], list[tuple[int, int]]]:
    """Triggers and terminator spans of one sentence. Uncertainty is matched before negation so
    "cannot exclude" is uncertainty and never the "not" negation inside it."""
    text = _mask(sentence, [m.span() for m in PSEUDO.finditer(sentence)])
    triggers: list[Trigger] = []
    taken: list[tuple[int, int]] = []
    for rx, kind, direction in (
        (POST_UNCERTAIN, "unc", "post"),
        (PRE_UNCERTAIN, "unc", "pre"),
        (POST_NEGATION, "neg", "post"),
        (PRE_NEGATION, "neg", "pre"),
        (BOTH_NEGATION, "neg", "both"),
    ):
        for m in rx.finditer(text):
            a, b = m.span()
            if any(a < tb and ta < b for ta, tb in taken):
                continue
            taken.append((a, b))
            weak = kind == "unc" and WEAK_UNCERTAIN.fullmatch(m.group(0)) is not None
            triggers.append(Trigger(a, b, kind, direction, weak))  # type: ignore[arg-type]
    terms = [m.span() for m in TERMINATORS.finditer(text) if not any(m.start() < tb and ta < m.end() for ta, tb in taken)]
    return triggers, terms


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def polarity(sentence: str, start: int, end: int, triggers: list[Trigger], terms: list[tuple[int, int]]) -> int:
    """Polarity of the mention at [start, end): 1 asserted, 0 negated, -1 uncertain.

    The closest pre trigger and the closest post trigger in scope decide; uncertainty beats negation
    when both govern the mention (a hedged denial is still a hedge)."""
    pre = [
        t
        for t in triggers
        if t.direction in ("pre", "both")
        and t.end <= start
        and not any(t.end <= a and b <= start for a, b in terms)
        and _words(sentence[t.end : start]) <= PRE_SCOPE_WORDS
    ]
    post = [
        t
        for t in triggers
        if t.direction in ("post", "both")
        and t.start >= end
        and not any(end <= a and b <= t.start for a, b in terms)
        and _words(sentence[end : t.start]) <= POST_SCOPE_WORDS
    ]
    kinds: set[str] = set()
    if pre:
        closest = max(pre, key=lambda t: t.end)
        if closest.weak and any(t.kind == "neg" and t.end <= closest.start for t in pre):
            kinds.add("neg")
        else:
            kinds.add(closest.kind)
    if post:
        kinds.add(min(post, key=lambda t: t.start).kind)
    if "unc" in kinds:
        return -1
    if "neg" in kinds:
        return 0
    return 1
