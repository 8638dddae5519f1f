"""VQA scores: exact-match accuracy for closed questions, token F1 for open ones (SQuAD-style)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_YES = {"yes", "y", "true", "present", "positive"}
_NO = {"no", "n", "false", "absent", "negative"}


def normalize_answer(text: str) -> str:
    """Lower-case, punctuation and articles removed, whitespace collapsed; yes/no synonyms unified."""
    t = re.sub(r"[^\w\s]", " ", (text or "").lower())
    t = " ".join(_ARTICLES.sub(" ", t).split())
    if t in _YES:
        return "yes"
    if t in _NO:
        return "no"
    return t


def token_f1(prediction: str, reference: str) -> float:
    p, r = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not p and not r:
        return 1.0
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def vqa_scores(predictions: Sequence[str], references: Sequence[str], kinds: Sequence[str]) -> dict:
    """``kinds[i]`` is "closed" or "open". Returns closed accuracy, open token F1, counts and per-type."""
    if not len(predictions) == len(references) == len(kinds):
        raise ValueError("predictions, references and kinds must have the same length")
    closed = [normalize_answer(p) == normalize_answer(r) for p, r, k in zip(predictions, references, kinds, strict=True) if k == "closed"]
    opened = [token_f1(p, r) for p, r, k in zip(predictions, references, kinds, strict=True) if k == "open"]
    bad = sorted({k for k in kinds if k not in ("closed", "open")})
    if bad:
        raise ValueError(f"unknown question kind(s) {bad}")
    return {
        "closed_accuracy": sum(closed) / len(closed) if closed else None,
        "open_token_f1": sum(opened) / len(opened) if opened else None,
        "n_closed": len(closed),
        "n_open": len(opened),
    }
