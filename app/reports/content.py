"""The text of a report: five named sections, in a fixed order, plus an optional addendum."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SECTION_KEYS: tuple[str, ...] = ("indication", "technique", "comparison", "findings", "impression")
SECTION_TITLES: dict[str, str] = {
    "indication": "Indication",
    "technique": "Technique",
    "comparison": "Comparison",
    "findings": "Findings",
    "impression": "Impression",
    "addendum": "Addendum",
}
ALL_SECTION_KEYS: tuple[str, ...] = (*SECTION_KEYS, "addendum")


class ReportContentError(ValueError):
    """Section data that cannot be a report (unknown section, non-text value)."""


@dataclass(frozen=True)
class ReportContent:
    """Immutable section texts; missing sections are empty strings."""

    sections: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clean: dict[str, str] = {}
        for key, value in self.sections.items():
            if key not in ALL_SECTION_KEYS:
                raise ReportContentError(f"unknown report section {key!r}; known: {', '.join(ALL_SECTION_KEYS)}")
            if not isinstance(value, str):
                raise ReportContentError(f"section {key!r} must be text, got {type(value).__name__}")
            clean[key] = value.replace("\r\n", "\n").replace("\r", "\n")
        object.__setattr__(self, "sections", clean)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ReportContent:
        return cls(dict(data or {}))

    def get(self, key: str) -> str:
        return self.sections.get(key, "")

    def to_dict(self) -> dict[str, str]:
        """All known sections in order; the addendum only when present."""
        out = {k: self.get(k) for k in SECTION_KEYS}
        if self.get("addendum"):
            out["addendum"] = self.get("addendum")
        return out

    def replace(self, **changes: str) -> ReportContent:
        data = dict(self.sections)
        data.update(changes)
        return ReportContent(data)

    def is_empty(self) -> bool:
        return not any(v.strip() for v in self.sections.values())

    def as_text(self) -> str:
        """Plain text with upper-case headings; the form used for export and for the labeler."""
        parts = []
        for key, text in self.to_dict().items():
            if text.strip():
                parts.append(f"{SECTION_TITLES[key].upper()}:\n{text.strip()}")
        return "\n\n".join(parts) + ("\n" if parts else "")
