"""Fields in template and macro text: `[normal size|enlarged]` is a pick-list, `[size]` a blank to type.

Qt-free so the rules are unit-tested without a window. The editor jumps between fields (F6 / Shift+F6),
offers the choices of a pick-list, and refuses to sign while any field is left: a template's wording is
never signed unless the radiologist chose it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# No nesting, no line breaks, at most 120 characters: a field is a short placeholder.
_FIELD = re.compile(r"\[([^\[\]\n]{1,120})\]")


@dataclass(frozen=True)
class Field:
    start: int  # index of "[" in the text
    end: int  # index after "]"
    body: str

    @property
    def choices(self) -> tuple[str, ...]:
        """The options of a pick-list (empty for a free-text field)."""
        parts = [p.strip() for p in self.body.split("|")]
        return tuple(p for p in parts if p) if len(parts) > 1 else ()

    @property
    def label(self) -> str:
        return self.body.strip() if not self.choices else " / ".join(self.choices)

    @property
    def default(self) -> str:
        """The first choice of a pick-list: what 'accept defaults' fills in ('' for a free field)."""
        return self.choices[0] if self.choices else ""


def fields_in(text: str) -> list[Field]:
    return [Field(m.start(), m.end(), m.group(1)) for m in _FIELD.finditer(text)]


def next_field(text: str, position: int, backwards: bool = False) -> Field | None:
    """The field after `position` (or before it), wrapping round; None when there is none."""
    found = fields_in(text)
    if not found:
        return None
    if backwards:
        before = [f for f in found if f.end <= position]
        return before[-1] if before else found[-1]
    after = [f for f in found if f.start >= position]
    return after[0] if after else found[0]


def field_at(text: str, position: int) -> Field | None:
    return next((f for f in fields_in(text) if f.start <= position <= f.end), None)


def fill_defaults(text: str) -> str:
    """Every pick-list replaced by its first choice; free fields are left for the radiologist."""
    return _FIELD.sub(lambda m: Field(m.start(), m.end(), m.group(1)).default or m.group(0), text)


def blank_fields(text: str) -> str:
    """`text` with every field replaced by as many spaces: what the findings labeler may read (a pick-list
    offering "cardiomegaly" does not say the heart is enlarged)."""
    return _FIELD.sub(lambda m: " " * len(m.group(0)), text)


def unfilled(sections: dict[str, str]) -> dict[str, list[str]]:
    """Fields still in each section: {section: [field label, ...]} (empty dict when all are filled)."""
    out = {}
    for key, text in sections.items():
        labels = [f.label for f in fields_in(text or "")]
        if labels:
            out[key] = labels
    return out


def describe_unfilled(sections: dict[str, str]) -> str:
    """A sentence for the Sign button's tooltip / refusal ('' when nothing is left to fill)."""
    left = unfilled(sections)
    if not left:
        return ""
    n = sum(len(v) for v in left.values())
    where = ", ".join(f"{k} ({len(v)})" for k, v in left.items())
    return (f"{n} template field{'s' if n != 1 else ''} not filled in {where}: choose or type each "
            f"[bracketed] field (F6 jumps to the next one) before signing.")
