"""Which questions an engine has a basis to answer, decided before any image is read.

The built-in engine answers one kind of question: is one of the findings its reading covers present
("Is there a pleural effusion?", "Is the heart enlarged?", "Is this chest radiograph normal?"). It has no
notion of devices, lines and tubes, where a finding is, how large it is, how it compares with a prior,
how severe it is or what to do about it, so those questions are refused with a sentence saying what it
can answer, never guessed. Engines without a finding list (a general VLM) get the older rule: anything
about what an image can show, nothing about identity, treatment or prognosis.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from engines.labeler import label_report
from engines.qa.question_finding import question_finding

CANNOT_ANSWER = "I cannot answer that from this image."

# Decisions an image cannot make, whatever finding the question names.
_DECISION = re.compile(
    r"\b(prognos\w*|surviv\w*|die|death|dying|cure|treat\w*|therap\w*|prescri\w*|medicat\w*|antibiotic\w*|drug|"
    r"dose|surgery|operate|biops\w*|admit\w*|discharge|should (i|we|he|she|they)|will (he|she|they|the patient)|"
    r"need (a|an|to)|recommend\w*)\b", re.IGNORECASE)
# Facts about the person or the world that no pixel holds.
_NOT_IN_IMAGE = re.compile(
    r"\b(name|age|how old|born|birthday|address|phone|insurance|bill|cost|price|who|patient'?s? (id|history)|"
    r"tomorrow|weather|family|smok\w*|genetic\w*|symptom\w*|pain|fever|cough\w*)\b", re.IGNORECASE)
# What the built-in engine has no notion of, each with the words that ask for it.
_UNSUPPORTED: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("devices, lines and tubes", re.compile(
        r"\b(devices?|pacemakers?|pacer|icd|defibrillator|lines?|tubes?|catheters?|picc|port-?a-?cath|ports?|"
        r"wires?|leads?|clips?|stents?|valves?|prosthe\w*|hardware|implants?|drains?|ng ?tube|et ?tube|"
        r"endotracheal|nasogastric|tracheostomy|sternotomy|staples|foreign bod\w*)\b", re.IGNORECASE)),
    ("where a finding is", re.compile(
        r"\b(where|which (side|lobe|lung|zone)|left|right|upper|lower|middle|lobe|lobar|apex|apical|base|basal|"
        r"bilateral|unilateral|location|located|locali[sz]e\w*|side|zone|segment\w*|perihilar|retrocardiac)\b",
        re.IGNORECASE)),
    ("how large a finding is", re.compile(
        r"\b(how (big|large|small|wide|much)|size of|sizes?|measure\w*|diameter|cm|mm|centimet\w*|millimet\w*|"
        r"volume|amount|ratio|cardiothoracic)\b", re.IGNORECASE)),
    ("comparison with earlier images", re.compile(
        r"\b(compar\w*|prior|previous\w*|earlier|last (time|study|exam|film)|before|change\w*|chang(ed|ing)|"
        r"worse\w*|better|improv\w*|progress\w*|resolv\w*|stable|new|interval|since|old (one|study|film)|"
        r"still)\b", re.IGNORECASE)),
    ("how severe a finding is", re.compile(
        r"\b(how (severe|bad|serious|advanced)|severity|severe|mild|moderate|grade|stage|acute|chronic|"
        r"urgent|emergency|critical)\b", re.IGNORECASE)),
    ("counting", re.compile(r"\b(how many|number of|count)\b", re.IGNORECASE)),
    ("anatomy outside its findings", re.compile(
        r"\b(fractur\w*|broken|rib|ribs|bones?|spine|vertebra\w*|clavicle|scoliosis|osteo\w*|"
        r"mediastin\w*|aort\w*|trachea\w*|hernia|free air|pneumoperitoneum|bowel|abdomen|breast|"
        r"thyroid|lymph\w*|calcif\w*|emphysema|copd|hyperinflat\w*|tuberculosis|tb|covid\w*|cancer|"
        r"granuloma\w*|diaphragm\w*)\b", re.IGNORECASE)),
)
_OPEN = re.compile(r"^\s*(what|which|how|why|describe|list|tell|explain|summari[sz]e|show)\b", re.IGNORECASE)
_IMAGE_TERMS = re.compile(
    r"\b(lungs?|heart|cardiac|chest|thora\w*|rib|ribs|bones?|spine|clavicle|diaphragm|costophrenic|hilum|hilar|"
    r"mediastin\w*|trachea|aort\w*|pleura\w*|effusion|opacit\w*|consolidat\w*|nodule|mass|lesion|fracture|"
    r"pneumo\w*|atelecta\w*|edema|oedema|cardiomegaly|enlarged|size|normal|abnormal\w*|findings?|impression|"
    r"device|tube|line|catheter|pacemaker|wire|left|right|upper|lower|lobe|apex|base|view|image|film|"
    r"radiograph|x-?ray|acute|chronic|severity|severe|mild|moderate|where|location|side|present|visible|seen)\b",
    re.IGNORECASE)

#: How the built-in engine's findings are named to a reader.
FINDING_WORDS = {"No Finding": "a normal study", "Cardiomegaly": "cardiomegaly", "Lung Opacity": "lung opacity",
                 "Lung Lesion": "a lung nodule or mass", "Edema": "pulmonary edema", "Consolidation": "consolidation",
                 "Pneumonia": "pneumonia", "Atelectasis": "atelectasis", "Pneumothorax": "pneumothorax",
                 "Pleural Effusion": "pleural effusion", "Pleural Other": "other pleural disease (thickening)",
                 "Enlarged Cardiomediastinum": "a widened mediastinum", "Fracture": "a fracture",
                 "Support Devices": "support devices"}


@dataclass(frozen=True)
class QuestionScope:
    """`finding`: the one finding an in-scope question asks about (None for engines without a finding list)."""

    in_scope: bool
    reason: str
    finding: str | None = None
    can_answer: str = ""
    findings: tuple[str, ...] = ()


def can_answer_sentence(findings: Collection[str]) -> str:
    """'I can say whether the image shows cardiomegaly, ..., or is normal - one finding per question ...'."""
    names = [FINDING_WORDS.get(f, f.lower()) for f in findings if f != "No Finding"]
    listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
    normal = ", or whether it is normal" if "No Finding" in findings else ""
    return (f"I can say whether this frontal chest radiograph shows {listed}{normal}: one finding per question, "
            "answered yes, no or uncertain with a probability. I cannot say where a finding is, how large or "
            "severe it is, how it compares with earlier images, or anything about devices, lines and tubes.")


def question_scope(question: str, findings: Collection[str] | None = None) -> QuestionScope:
    """Decide whether `question` is answerable. With `findings` (the engine's finding list) only a question
    about one of them is in scope; without, the general rule for engines that answer free questions."""
    text = (question or "").strip()
    sentence = can_answer_sentence(findings) if findings else ""
    if not text:
        return QuestionScope(False, "the question is empty", can_answer=sentence)
    if _DECISION.search(text):
        return QuestionScope(False, "it asks for a clinical decision, which an image alone cannot support",
                             can_answer=sentence)
    mentioned = tuple(sorted({m.finding for s in label_report(text).sentences for m in s.mentions}))
    if _NOT_IN_IMAGE.search(text) and not mentioned:
        return QuestionScope(False, "it asks about something a radiograph does not show", can_answer=sentence)
    if not findings:
        if mentioned:
            return QuestionScope(True, "it asks about " + ", ".join(mentioned), findings=mentioned)
        if _IMAGE_TERMS.search(text):
            return QuestionScope(True, "it asks about the image")
        return QuestionScope(False, "it names no finding or anatomy visible on a radiograph")
    for topic, pattern in _UNSUPPORTED:
        hit = pattern.search(text)
        if hit:
            return QuestionScope(False, f"it asks about {topic} (\u201c{hit.group(0)}\u201d), which this engine "
                                        "does not read", can_answer=sentence, findings=mentioned)
    outside = [f for f in mentioned if f not in findings]
    if outside:
        words = ", ".join(FINDING_WORDS.get(f, f) for f in outside)
        return QuestionScope(False, f"it asks about {words}, which this engine does not read", can_answer=sentence,
                             findings=mentioned)
    if _OPEN.search(text):
        return QuestionScope(False, "it is not a yes/no question about one finding", can_answer=sentence,
                             findings=mentioned)
    finding = question_finding(text, findings)
    if finding is None:
        why = ("it asks about several findings at once" if len([f for f in mentioned if f != "No Finding"]) > 1
               else "it names no finding this engine reads")
        return QuestionScope(False, why, can_answer=sentence, findings=mentioned)
    return QuestionScope(True, f"it asks whether the image shows {FINDING_WORDS.get(finding, finding)}", finding,
                         sentence, mentioned)
