"""The order of a report's findings sections, from the site's template (resources/templates).

A template's findings text is one line per section ("Lungs: clear.", "Heart and mediastinum: normal size");
the labels give the order. Without such lines the order radiologists use most: heart and mediastinum,
lungs, pleura, bones, devices.
"""

from __future__ import annotations

import re

from engines.sentences.reading import SECTIONS

DEFAULT_ORDER: tuple[str, ...] = ("heart", "lungs", "pleura", "bones", "devices", "other")
_LABEL_WORDS = (
    ("heart", re.compile(r"heart|cardi|mediastin", re.I)),
    ("lungs", re.compile(r"lung|parenchym|airspace", re.I)),
    ("pleura", re.compile(r"pleura", re.I)),
    ("bones", re.compile(r"bone|osseous|skelet|soft tissue", re.I)),
    ("devices", re.compile(r"device|tube|line|catheter|hardware", re.I)),
)
_LINE_LABEL = re.compile(r"^\s*([A-Za-z][A-Za-z /&,-]{1,40}):")


def section_order(template_findings: str | None) -> tuple[str, ...]:
    """Section keys in the template's order, then the ones it does not name in the default order."""
    found: list[str] = []
    for line in (template_findings or "").splitlines():
        m = _LINE_LABEL.match(line)
        if m is None:
            continue
        hits = sorted((rx.search(m.group(1)).start(), key) for key, rx in _LABEL_WORDS if rx.search(m.group(1)))
        found += [k for _, k in hits if k not in found]
    return tuple(found) + tuple(k for k in DEFAULT_ORDER if k not in found)


def check_order(order: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    unknown = [k for k in order if k not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown report section(s) {unknown}; known: {list(SECTIONS)}")
    return tuple(order) + tuple(k for k in DEFAULT_ORDER if k not in order)
