"""Is a question about what the image shows? Out-of-scope questions get an honest refusal, not invention.

Rules first (identity, treatment, prognosis, anything outside the picture), then the findings labeler:
a question that names no finding and no anatomy/imaging term is not something the image can answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engines.labeler import label_report

CANNOT_ANSWER = "I cannot answer that from this image."

# Decisions an image cannot make, whatever finding the question names.
_NEVER = re.compile(
    r"\b(prognos\w*|surviv\w*|die|death|cure|treat\w*|therap\w*|prescri\w*|medicat\w*|antibiotic\w*|drug|"
    r"dose|surgery|operate|should (i|we|he|she|they)|will (he|she|they|the patient))\b", re.IGNORECASE)
# Facts about the person or the world that no pixel holds (unless a finding is named too).
_NOT_IN_IMAGE = re.compile(
    r"\b(name|age|old|born|birthday|address|phone|insurance|bill|cost|price|who|patient'?s? (id|history)|"
    r"tomorrow|weather|family|smok\w*|genetic\w*)\b", re.IGNORECASE)
_IMAGE_TERMS = re.compile(
    r"\b(lungs?|heart|cardiac|chest|thora\w*|rib|ribs|bones?|spine|clavicle|diaphragm|costophrenic|hilum|hilar|"
    r"mediastin\w*|trachea|aort\w*|pleura\w*|effusion|opacit\w*|consolidat\w*|nodule|mass|lesion|fracture|"
    r"pneumo\w*|atelecta\w*|edema|oedema|cardiomegaly|enlarged|size|normal|abnormal\w*|findings?|impression|"
    r"device|tube|line|catheter|pacemaker|wire|left|right|upper|lower|lobe|apex|base|view|image|film|"
    r"radiograph|x-?ray|acute|chronic|severity|severe|mild|moderate|where|location|side|present|visible|seen)\b",
    re.IGNORECASE)


@dataclass(frozen=True)
class Scope:
    in_scope: bool
    reason: str
    findings: tuple[str, ...] = ()


def question_scope(question: str) -> Scope:
    text = (question or "").strip()
    if not text:
        return Scope(False, "the question is empty")
    mentioned = tuple(sorted({m.finding for s in label_report(text).sentences for m in s.mentions}))
    if _NEVER.search(text):
        return Scope(False, "it asks for a clinical decision, which an image alone cannot support")
    if _NOT_IN_IMAGE.search(text) and not mentioned:
        return Scope(False, "it asks about something a radiograph does not show")
    if mentioned:
        return Scope(True, "it asks about " + ", ".join(mentioned), mentioned)
    if _IMAGE_TERMS.search(text):
        return Scope(True, "it asks about the image")
    return Scope(False, "it names no finding or anatomy visible on a radiograph")
