"""Question/answer pairs for VQA derived by rules from a sample's labels, boxes and report text.

After Medical-Diff-VQA (which mined MIMIC reports by rules): presence ("is there X?"), normality, the list
of abnormalities, location by lung zone (from a finding box, else from the sentence that describes the
finding), laterality and severity words. Every pair carries its image's id and split, so a held-out
question never shares an image (or a patient) with training questions.

Box geometry: radiographs are displayed with the patient's right on the image's left, so a box centre
left of the midline is the *right* lung; zones are image thirds from top (upper/middle/lower).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from engines.data.sample import Sample
from engines.labeler.findings import PATHOLOGIES
from engines.labeler.label import label_report

#: How each finding is named in a question.
QUESTION_NAME = {
    "Enlarged Cardiomediastinum": "an enlarged cardiomediastinum",
    "Cardiomegaly": "cardiomegaly",
    "Lung Opacity": "a lung opacity",
    "Lung Lesion": "a lung lesion (nodule or mass)",
    "Edema": "pulmonary edema",
    "Consolidation": "consolidation",
    "Pneumonia": "pneumonia",
    "Atelectasis": "atelectasis",
    "Pneumothorax": "a pneumothorax",
    "Pleural Effusion": "a pleural effusion",
    "Pleural Other": "another pleural abnormality (thickening or plaque)",
    "Fracture": "a fracture",
    "Support Devices": "a support device (tube, line or implant)",
}
#: Findings that have a side (the heart and mediastinum do not).
LATERAL = frozenset(PATHOLOGIES) - {"Enlarged Cardiomediastinum", "Cardiomegaly", "Edema"}
_SEVERITY = re.compile(r"\b(trace|minimal|tiny|small|mild|moderate|large|severe|marked|extensive|massive)\b", re.I)
_SEVERITY_CANON = {"trace": "mild", "minimal": "mild", "tiny": "mild", "small": "mild", "mild": "mild",
                   "moderate": "moderate", "large": "severe", "severe": "severe", "marked": "severe",
                   "extensive": "severe", "massive": "severe"}
_BILATERAL = re.compile(r"\b(bilateral(?:ly)?|bibasilar|both)\b", re.I)
_SIDE = re.compile(r"\b(right|left)\b", re.I)
_ZONE = re.compile(
    r"\b(?:(upper|middle|mid|lower)\s*(?:lobes?|lung|zones?|lungs?)|(apex|apical|apices)|(bases?|basilar|basal)|"
    r"(lingula\w*)|(perihilar|hilar)|(retrocardiac))\b",
    re.I,
)


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str
    kind: str  # "closed" | "open"
    qtype: str  # presence | normal | abnormalities | location | laterality | severity
    image_id: str = ""
    split: str = ""
    finding: str = ""


def box_zone(x: float, y: float, w: float, h: float, size: float = 256.0) -> tuple[str, str]:
    """(side, zone) of a box centre in an image of ``size`` pixels: side from the patient's view."""
    cx, cy = x + w / 2, y + h / 2
    side = "right" if cx < size / 2 else "left"
    zone = "upper" if cy < size / 3 else "middle" if cy < 2 * size / 3 else "lower"
    return side, zone


def _text_location(sentence: str) -> tuple[str | None, str | None]:
    side = "bilateral" if _BILATERAL.search(sentence) else None
    if side is None:
        sides = {m.lower() for m in _SIDE.findall(sentence)}
        side = "bilateral" if sides == {"right", "left"} else (sides.pop() if sides else None)
    zone = None
    m = _ZONE.search(sentence)
    if m:
        if m.group(1):
            zone = {"mid": "middle"}.get(m.group(1).lower(), m.group(1).lower())
        elif m.group(2):
            zone = "upper"
        elif m.group(3):
            zone = "lower"
        elif m.group(4):
            zone = "middle"
        elif m.group(5):
            zone = "perihilar"
        elif m.group(6):
            zone = "retrocardiac"
    if "bibasilar" in sentence.lower():
        zone = zone or "lower"
    return side, zone


def derive_qa(sample: Sample) -> list[QAPair]:
    """All rule-derived QA pairs of one sample (deterministic; order: normal, abnormalities, presence,
    then location/laterality/severity per positive finding)."""
    out: list[QAPair] = []

    def add(q: str, a: str, kind: str, qtype: str, finding: str = "") -> None:
        out.append(QAPair(q, a, kind, qtype, sample.image_id, sample.split, finding))

    findings = dict(sample.findings)
    positives = [f for f in PATHOLOGIES if findings.get(f) == 1]
    if findings.get("No Finding") == 1 and not positives:
        add("Is this chest radiograph normal?", "yes", "closed", "normal")
    elif positives:
        add("Is this chest radiograph normal?", "no", "closed", "normal")
    if positives or findings.get("No Finding") == 1:
        answer = ", ".join(f.lower() for f in positives) if positives else "none"
        add("What abnormalities are seen in this chest radiograph?", answer, "open", "abnormalities")
    for f in [*PATHOLOGIES, "Support Devices"]:
        v = findings.get(f)
        if v in (0, 1):
            add(f"Is there {QUESTION_NAME[f]}?", "yes" if v == 1 else "no", "closed", "presence", f)

    # Only a real report's words about side, zone and severity describe this image; a composed report's
    # (lab.data.paired) are borrowed from another patient, so only boxes locate findings there.
    sentences = label_report(sample.report_text).sentences if sample.has_report and sample.report_is_real else []
    for f in positives:
        boxes = [b for b in sample.boxes if b.kind == "finding" and b.finding == f]
        side: str | None = None
        zone: str | None = None
        if boxes:
            zones = [box_zone(b.x, b.y, b.w, b.h) for b in boxes]
            sides = {s for s, _ in zones}
            side = "bilateral" if len(sides) > 1 else next(iter(sides))
            zone = zones[0][1] if len({z for _, z in zones}) == 1 else None
        severity = None
        for s in sentences:
            if s.findings.get(f) != 1:
                continue
            t_side, t_zone = _text_location(s.text)
            side = side or t_side
            zone = zone or t_zone
            m = _SEVERITY.search(s.text)
            if m and severity is None:
                severity = _SEVERITY_CANON[m.group(1).lower()]
        name = QUESTION_NAME[f].split(" (")[0]
        if f in LATERAL and side is not None:
            add(f"Which side is {name} on?", side, "closed", "laterality", f)
            where = f"{side} {zone} zone" if zone and side != "bilateral" else (f"bilateral {zone} zones" if zone else side)
            add(f"Where is {name} located?", where, "open", "location", f)
        if severity is not None:
            add(f"How severe is {name}?", severity, "closed", "severity", f)
    return out


def derive_qa_by_split(samples: Iterable[Sample]) -> dict[str, list[QAPair]]:
    """QA pairs grouped by their image's split (the held-out questions are those of held-out images)."""
    out: dict[str, list[QAPair]] = {}
    for s in samples:
        for qa in derive_qa(s):
            out.setdefault(s.split, []).append(qa)
    return out
