"""Split free report text into its FINDINGS and IMPRESSION sections (MIMIC, plain .txt, IU)."""

from __future__ import annotations

import re

_HEADER = re.compile(
    r"^\s*(?P<name>[A-Z][A-Z /&()-]{2,40}?)\s*:\s*",
    re.M,
)
_FINDINGS_NAMES = ("FINDINGS", "FINDING", "REPORT", "DESCRIPTION")
_IMPRESSION_NAMES = ("IMPRESSION", "IMPRESSIONS", "CONCLUSION", "CONCLUSIONS", "OPINION", "SUMMARY")


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def parse_report_sections(text: str) -> tuple[str, str]:
    """(findings, impression) of a report. Section headers are upper-case words ending in ":" at a line
    start ("FINDINGS:", "IMPRESSION:"). Text without any header is taken as findings, so a plain note
    is never lost."""
    text = text or ""
    heads = [m for m in _HEADER.finditer(text)]
    if not heads:
        return _clean(text), ""
    sections: dict[str, str] = {}
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        name = m.group("name").strip().upper()
        sections[name] = (sections.get(name, "") + " " + text[m.end() : end]).strip()
    findings = next((sections[n] for n in _FINDINGS_NAMES if sections.get(n)), "")
    impression = next((sections[n] for n in _IMPRESSION_NAMES if sections.get(n)), "")
    if not findings and not impression:
        # Headers but none we know (e.g. only "INDICATION:"): keep the text after the last header.
        findings = text[heads[-1].end() :]
    return _clean(findings), _clean(impression)
