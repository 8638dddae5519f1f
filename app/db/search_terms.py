"""What the worklist's search fields mean in SQL, written so that every term is an index range.

A typed word matches from the start of a name word, a patient ID or an accession, case-insensitively, as
PACS searches do ("smi" finds SMITH, "acc-2" finds ACC-200); '*' and '?' are wildcards ("sm*th", "*son"
searches inside words but scans). Names are split into words on spaces, '^' and '-' both when stored
(triggers of migration 0007_study_counts) and when typed, so "jones" finds SMITH-JONES^ANNA.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal

_WORD_SPLIT = re.compile(r"[\s^=\-]+")


def name_words(text: str) -> list[str]:
    """'Smith-Jones^anna' -> ['SMITH', 'JONES', 'ANNA']: the words a name is searched by."""
    return [w for w in _WORD_SPLIT.split(text.upper()) if w]


def _like_prefix_pattern(text: str) -> str:
    """'SM*TH' -> 'SM%TH%' with LIKE's own characters taken literally (escape '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_") + "%"


def _successor(prefix: str) -> str | None:
    """The smallest string above every string that starts with `prefix` (None past the last code point)."""
    last = ord(prefix[-1])
    return prefix[:-1] + chr(last + 1) if last < 0x10FFFF else None


def prefix_match(key: Any, typed: str) -> ColumnElement[bool]:
    """`key` (an upper-cased column expression) starts with `typed` (upper-cased here, wildcards allowed).

    The literal part before the first wildcard becomes `key >= p AND key < p'`, which an index on `key`
    serves on every database (LIKE 'p%' is an index range only under some collations and settings).
    """
    text = typed.upper()
    literal_part = re.split(r"[*?]", text, maxsplit=1)[0]
    terms: list[ColumnElement[bool]] = []
    if literal_part:
        terms.append(key >= literal(literal_part))
        upper = _successor(literal_part)
        if upper is not None:
            terms.append(key < literal(upper))
    if literal_part != text:
        terms.append(key.like(_like_prefix_pattern(text), escape="\\"))
    return and_(*terms)


def upper_key(column: Any, dialect: str) -> Any:
    """upper(column) as the expression indexes of migration 0004 hold it (collation "C" on PostgreSQL)."""
    key = func.upper(column)
    return key.collate("C") if dialect == "postgresql" else key
