"""What one report sentence states: the labeler's findings (1 present, 0 absent, -1 uncertain), laterality,
severity and location words, and the template section it belongs to; plus the rules that say when two
sentences contradict each other.

Contradiction follows CheXpert's hierarchy: a child finding (pneumonia, atelectasis...) implies its parent
(Lung Opacity), and denying the parent ("the lungs are clear") denies its children, so "lungs are clear"
and "right lower lobe pneumonia" conflict although the labeler reads different findings in them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from engines.labeler.label import label_report

#: CheXpert's hierarchy: parent -> children.
HIERARCHY: dict[str, tuple[str, ...]] = {
    "Lung Opacity": ("Edema", "Consolidation", "Pneumonia", "Lung Lesion", "Atelectasis"),
    "Enlarged Cardiomediastinum": ("Cardiomegaly",),
}
PARENT: dict[str, str] = {c: p for p, cs in HIERARCHY.items() for c in cs}

#: Template sections of a chest radiograph report and the findings each holds.
SECTION_FINDINGS: dict[str, tuple[str, ...]] = {
    "heart": ("Cardiomegaly", "Enlarged Cardiomediastinum"),
    "lungs": ("Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis"),
    "pleura": ("Pleural Effusion", "Pneumothorax", "Pleural Other"),
    "bones": ("Fracture",),
    "devices": ("Support Devices",),
}
SECTIONS: tuple[str, ...] = ("heart", "lungs", "pleura", "bones", "devices", "other")
_SECTION_OF = {f: s for s, fs in SECTION_FINDINGS.items() for f in fs}
_SECTION_WORDS = (
    ("heart", re.compile(r"\b(?:heart|cardi\w*|mediastin\w*|aort\w*|hil(?:um|ar|a))\b", re.I)),
    ("pleura", re.compile(r"\b(?:pleura\w*|costophrenic|effusions?|pneumothora\w*)\b", re.I)),
    ("lungs", re.compile(r"\b(?:lungs?|pulmonary|airspace|parenchym\w*|vascular\w*|lobes?|lobar|bibasilar)\b",
                         re.I)),
    ("bones", re.compile(r"\b(?:osseous|bony|bones?|skeletal|spine|ribs?|soft\s+tissues?|thoracic\s+spine|"
                         r"degenerative|scoliosis|clavicles?|vertebra\w*)\b", re.I)),
    ("devices", re.compile(r"\b(?:tubes?|catheters?|lines?|pacemaker|leads?|clips?|wires?|sternotomy)\b", re.I)),
)
_SIDE = re.compile(r"\b(right|left|bilateral(?:ly)?|bibasilar|both)\b", re.I)
_SEVERITY = re.compile(r"\b(mild(?:ly)?|minimal|slight(?:ly)?|small|trace|moderate(?:ly)?|large|severe(?:ly)?|"
                       r"marked(?:ly)?|massive|extensive|borderline)\b", re.I)
_LOCATION = re.compile(r"\b(upper|middle|mid|lower|base|bases|basilar|basal|apex|apices|apical|lingula\w*|"
                       r"retrocardiac|perihilar|hilar|midlung|lateral|medial|peripheral|central)\b", re.I)


_LOBE_LEVELS = frozenset({"upper", "middle", "mid", "lower"})


def side_of(text: str) -> str | None:
    """right / left / bilateral when the sentence names one (both sides named = bilateral), else None."""
    sides = {s.lower() for s in _SIDE.findall(text)}
    if sides & {"bilateral", "bilaterally", "bibasilar", "both"} or {"right", "left"} <= sides:
        return "bilateral"
    return next(iter(sides)) if len(sides) == 1 else None


def severity_of(text: str) -> str | None:
    m = _SEVERITY.search(text)
    if m is None:
        return None
    w = m.group(1).lower()
    if w.startswith(("mild", "minimal", "slight", "trace", "small", "borderline")):
        return "mild"
    if w.startswith("moderate"):
        return "moderate"
    return "severe"


@dataclass(frozen=True)
class SentenceReading:
    """The labeler's reading of one sentence and the words that place it."""

    states: Mapping[str, int]  # finding -> 1 present, 0 absent, -1 uncertain (No Finding left out)
    laterality: str | None = None
    severity: str | None = None
    location: tuple[str, ...] = ()
    section: str = "other"
    present: frozenset[str] = field(init=False)
    absent: frozenset[str] = field(init=False)
    uncertain: frozenset[str] = field(init=False)
    # Present findings with the parents they imply (pneumonia -> Lung Opacity); denied findings with the
    # children a denied parent denies (lungs clear -> no pneumonia). Worked out once: a draft's slot loop
    # asks for them tens of thousands of times.
    effective_present: frozenset[str] = field(init=False, compare=False, repr=False)
    effective_absent: frozenset[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        present = frozenset(f for f, v in self.states.items() if v == 1)
        absent = frozenset(f for f, v in self.states.items() if v == 0)
        object.__setattr__(self, "present", present)
        object.__setattr__(self, "absent", absent)
        object.__setattr__(self, "uncertain", frozenset(f for f, v in self.states.items() if v == -1))
        object.__setattr__(self, "effective_present", present | {PARENT[f] for f in present if f in PARENT})
        object.__setattr__(self, "effective_absent", absent | {c for f in absent for c in HIERARCHY.get(f, ())})

    @property
    def is_normal_statement(self) -> bool:
        return bool(self.absent) and not self.present and not self.uncertain

    def to_json(self) -> dict:
        return {"states": dict(self.states), "laterality": self.laterality, "severity": self.severity,
                "location": list(self.location), "section": self.section}

    @classmethod
    def from_json(cls, d: Mapping) -> SentenceReading:
        return cls({str(k): int(v) for k, v in dict(d.get("states") or {}).items()}, d.get("laterality"),
                   d.get("severity"), tuple(d.get("location") or ()), str(d.get("section") or "other"))


def section_of(text: str, states: Mapping[str, int]) -> str:
    """The template section a sentence belongs to: that of its first stated finding (present first), else of
    its first anatomical word."""
    for want in (1, -1, 0):
        for f, v in states.items():
            if v == want and f in _SECTION_OF:
                return _SECTION_OF[f]
    hits = [(m.start(), s) for s, rx in _SECTION_WORDS for m in [rx.search(text)] if m is not None]
    return min(hits)[1] if hits else "other"


def read_sentence(text: str) -> SentenceReading:
    """The labeler's reading of one sentence (findings combined over the parts the labeler splits it into)."""
    found = dict(label_report(text).findings)
    found.pop("No Finding", None)
    return SentenceReading(found, side_of(text), severity_of(text),
                           tuple(dict.fromkeys(m.lower() for m in _LOCATION.findall(text))), section_of(text, found))


def conflicts(a: SentenceReading, b: SentenceReading) -> bool:
    """True when the two sentences cannot stand in one report: one finding (or a parent and its child) stated
    present or uncertain in one and absent in the other, or one finding placed on different sides (right, left,
    bilateral) or in different lobe levels (upper / middle / lower)."""
    a_pos, b_pos = a.effective_present | a.uncertain, b.effective_present | b.uncertain
    if a_pos & b.effective_absent or b_pos & a.effective_absent:
        return True
    if a.present & b.uncertain or b.present & a.uncertain:
        return True  # "pneumonia" and "possible pneumonia" in one report is a contradiction to a reader
    shared = (a.present | a.uncertain) & (b.present | b.uncertain)
    if not shared:
        return False
    if a.laterality and b.laterality and a.laterality != b.laterality:
        return True  # right / left / bilateral: one side per finding
    lobes_a, lobes_b = set(a.location) & _LOBE_LEVELS, set(b.location) & _LOBE_LEVELS
    return bool(lobes_a and lobes_b and not lobes_a & lobes_b)  # upper lobe in one, lower lobe in the other


def redundant(a: SentenceReading, b: SentenceReading) -> bool:
    """True when both sentences deny one finding (a denied parent denies its children: "the lungs are clear" and
    "no pulmonary edema"): a draft that says "No pneumothorax. No pleural effusion or pneumothorax." denies it twice."""
    return bool(a.effective_absent & b.effective_absent)


def names_place(r: SentenceReading) -> bool:
    """Whether the sentence places what it states: a side or location word for a finding it states present or
    uncertain, or a denial limited to one side or place ("no left effusion"). A denial on both sides ("both lungs
    are clear") places nothing: it covers everywhere."""
    if r.present or r.uncertain:
        return r.laterality is not None or bool(r.location)
    return bool(r.absent) and (r.laterality in ("right", "left") or bool(r.location))


def consistent_with(reading: SentenceReading, committed: Iterable[SentenceReading]) -> bool:
    return not any(conflicts(reading, c) for c in committed)
