"""The 14 CheXpert findings and the phrases that mention them.

Kept apart from the rule engine so the vocabulary can be read and extended without touching scope logic.
Each finding has *mention* patterns (the finding is talked about) and *normal* patterns (a sentence that
states the finding is absent without a negation word, e.g. "heart size is normal").
"""

from __future__ import annotations

import re
from typing import Final

FINDINGS: Final[tuple[str, ...]] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

#: Findings that are pathologies (everything but the two that are not: No Finding and Support Devices).
PATHOLOGIES: Final[tuple[str, ...]] = tuple(f for f in FINDINGS if f not in ("No Finding", "Support Devices"))

_SIZE = r"(?:(?:mild(?:ly)?|moderate(?:ly)?|severe(?:ly)?|marked(?:ly)?|slight(?:ly)?|minimal(?:ly)?|borderline|massive(?:ly)?|stable|persistent(?:ly)?|again|still|now|top[- ]normal)\s+)*"
_HEART = r"(?:heart|cardiac\s+(?:silhouette|shadow|contour|size)|cardiac)"
_MEDIAST = r"(?:cardio)?mediastin(?:um|al)(?:\s+(?:silhouette|contours?|shadow|width))?"
_BE = r"(?:\s+(?:size|silhouette|contours?|shadow))?\s+(?:is|are|appears?|remains?|seems?)?\s*(?:to\s+be\s+)?"

MENTIONS: Final[dict[str, tuple[str, ...]]] = {
    "Enlarged Cardiomediastinum": (
        r"(?:widen\w*|enlarge\w*|prominen\w*)\s+(?:of\s+)?(?:the\s+)?(?:\w+\s+)?(?:cardio)?mediastin\w*",
        rf"{_MEDIAST}{_BE}(?:\w+\s+){{0,2}}?{_SIZE}(?:widen(?:ed|ing)|enlarged|prominent|wide)",
        r"mediastinal\s+(?:widening|enlargement|prominence)",
    ),
    "Cardiomegaly": (
        r"cardiomegaly",
        r"cardiac\s+(?:enlargement|hypertrophy)",
        rf"(?:enlarged?|large|prominent|increased)\s+(?:{_HEART})(?:\s+(?:size|silhouette|shadow|contour))?",
        rf"{_HEART}{_BE}{_SIZE}(?:enlarged|large|prominent|increased|upper\s+limits?\s+of\s+normal|at\s+the\s+upper\s+limits?)",
        r"(?:heart|cardiac)\s+size\s+(?:is\s+)?(?:mildly\s+|moderately\s+|severely\s+)?(?:enlarged|increased)",
        r"cardiomediastinal\s+(?:silhouette|contours?)\s+(?:is\s+|are\s+)?(?:mildly\s+|moderately\s+)?enlarged",
    ),
    "Lung Opacity": (
        r"opaci(?:ty|ties|fication|fied)",
        r"infiltrat(?:e|es|ion|ive)",
        r"(?:air[\s-]?space|alveolar)\s+(?:disease|process|opacit\w*|filling)",
        r"(?:increased\s+)?densit(?:y|ies)",
        r"haz(?:e|y|iness)",
        r"interstitial\s+(?:markings?|prominence|pattern|thickening|disease|lung\s+disease|changes?|opacit\w*|process)",
        r"reticul(?:ar|ation|onodular)",
        r"(?:parenchymal|pulmonary|lung)\s+scar(?:ring|s)?",
        r"(?:scarring|scar)",
        r"peribronchial\s+(?:thickening|cuffing)",
        r"ground[\s-]?glass",
        r"increased\s+(?:lung\s+|pulmonary\s+|bronchovascular\s+|interstitial\s+)?markings",
        r"fibro(?:sis|tic)",
    ),
    "Lung Lesion": (
        r"(?<!lymph\s)nodul(?:e|es|ar)",
        # masses outside the lung (thyroid, mediastinum, pericardium, pleura, hilum, breast) are not Lung Lesion
        r"(?<!soft\stissue\s)(?<!thyroid\s)(?<!mediastinal\s)(?<!pericardial\s)(?<!pleural\s)(?<!hilar\s)"
        r"(?<!breast\s)(?<!abdominal\s)mass(?:es)?",
        r"(?:cavitary|lung|pulmonary|parenchymal|nodular|spiculated)\s+lesions?",
        r"neoplasm|tumou?r|carcinoma|malignan(?:cy|t)|metasta(?:sis|ses|tic)",
        r"cavitation|cavity",
    ),
    "Edema": (
        r"o?edema(?:tous)?",
        r"(?:vascular|pulmonary|venous|interstitial)\s+(?:congestion|engorgement)",
        r"congestion",
        r"congestive\s+heart\s+failure|chf|heart\s+failure",
        r"(?:pulmonary\s+)?vascular\s+(?:prominence|redistribution|cephalization)",
        r"cephalization",
        r"kerley\s+b?\s*lines?",
    ),
    "Consolidation": (r"consolidat(?:ion|ions|ed|ive)",),
    "Pneumonia": (
        r"pneumonias?|pneumonitis|bronchopneumonia",
        r"(?<!granulomatous\s)(?<!old\s)(?<!prior\s)infect(?:ion|ious|ive)(?:\s+process)?",
    ),
    "Atelectasis": (
        r"atelecta(?:sis|ses|tic)",
        r"(?:lobar|lung|segmental)\s+collapse|collapsed?\s+(?:lung|lobe)",
    ),
    "Pneumothorax": (r"pneumothora(?:x|ces)|hydropneumothorax",),
    "Pleural Effusion": (
        r"effusions?",
        r"pleural\s+fluid|hydrothorax|fluid\s+in\s+the\s+(?:pleural|fissure)",
        r"blunt(?:ed|ing)\s+(?:of\s+)?(?:the\s+)?(?:\w+\s+)?(?:costophrenic|cp)\s+(?:angles?|sulc(?:us|i))",
        r"(?:costophrenic|cp)\s+(?:angles?|sulc(?:us|i))\s+(?:is\s+|are\s+)?(?:\w+\s+)?blunt(?:ed|ing)",
        r"meniscus",
    ),
    "Pleural Other": (
        r"pleural\s+(?:thickening|plaques?|scar(?:ring)?|calcifications?|reaction|disease)",
        r"fibrothorax|pleural[\s-]+parenchymal\s+scarring",
        r"(?:bi)?apical\s+(?:pleural\s+)?(?:cap(?:s|ping)?|thickening)|pleural\s+capping",
        r"fissur\w*\s+thickening|thickening\s+(?:of|in|along)\s+the\s+(?:\w+\s+)?fissures?",
        r"(?:effusions?|fluid)\s+(?:versus|vs\.?|or|and/or)\s+(?:pleural\s+)?(?:thickening|scarring)",
    ),
    "Fracture": (r"fractur(?:e|es|ed)",),
    "Support Devices": (
        r"(?:endotracheal|et|nasogastric|ng|og|orogastric|chest|feeding|enteric|tracheostomy|dobhoff|gastric)\s+tubes?",
        r"(?:central\s+venous|picc|swan[\s-]?ganz|central|venous|ij|subclavian|arterial|midline)\s+(?:catheter|line)s?",
        r"catheters?|picc",
        r"pacemakers?|pacer|defibrillator|aicd|icd\s+leads?|leads?\s+(?:in|terminat\w+|project\w*)",
        r"sternotomy(?:\s+wires?)?|sternal\s+wires?|cerclage\s+wires?",
        r"(?:surgical\s+)?clips?|stents?|prosthe(?:sis|tic)|(?:valve\s+)?replacement|hardware|sutures?",
        r"ports?(?:-a-cath)?|portacath|port-a-cath|drains?|tubes?|tubing|devices?",
        r"(?:spinal\s+|nerve\s+)?stimulator|icd|(?:monitor(?:ing)?|ekg|ecg|cardiac|telemetry)\s+leads?|shunt",
        r"tip\s+(?:projecting|projects|overlying|overlies|is|at|in|terminat\w*|visualized|extends)",
        r"(?:picc|central|venous|catheter)\s+tip",
    ),
}

#: Sentences that state a finding is absent without a negation word.
NORMAL_STATEMENTS: Final[dict[str, tuple[str, ...]]] = {
    "Cardiomegaly": (
        rf"{_HEART}{_BE}(?:of\s+)?(?:(?:within|upper|top)\s+)?(?:normal|unremarkable|not\s+enlarged)",
        r"(?:normal|unremarkable)\s+(?:heart|cardiac)(?:\s+(?:size|silhouette|contours?|shadow))?",
        r"(?:normal|unremarkable)\s+(?:size\s+(?:of\s+the\s+)?)?(?:cardiomediastinal|cardiac|heart)",
        r"(?:heart|cardiac)\s+(?:size|silhouette)\s+(?:and\s+\w+\s+)*(?:are|is)\s+(?:within\s+)?normal",
        r"cardiomediastinal\s+(?:silhouette|contours?|shadow)\s+(?:is\s+|are\s+|appears?\s+|remains?\s+)?(?:\w+\s+){0,3}?(?:within\s+)?(?:normal|unremarkable|stable)",
        r"(?:heart\s+size|cardiac\s+silhouette|cardiomediastinal\s+silhouette)\s+(?:and\s+)?(?:\w+\s+){0,4}(?:are|is)\s+(?:within\s+)?normal",
    ),
    "Enlarged Cardiomediastinum": (
        rf"{_MEDIAST}{_BE}(?:(?:within|upper)\s+)?(?:normal|unremarkable|stable)",
        r"(?:normal|unremarkable)\s+(?:size\s+(?:of\s+the\s+)?)?(?:cardio)?mediastin\w*",
        r"mediastinal\s+(?:silhouette|contours?)\s+(?:and\s+)?(?:\w+\s+){0,4}(?:are|is)\s+(?:within\s+)?normal",
        r"(?:heart|cardiac)(?:\s+size)?\s+and\s+(?:cardio)?mediastin\w*(?:\s+\w+)?\s+(?:are|is)\s+(?:within\s+)?(?:normal|unremarkable|stable)",
    ),
    "Lung Opacity": (
        r"(?:the\s+)?lungs?\s+(?:is\s+|are\s+|appear\s+|remain\s+)?(?:\w+\s+){0,2}?(?:clear|normal)",
        r"clear\s+lungs?",
    ),
    "Consolidation": (
        r"(?:the\s+)?lungs?\s+(?:is\s+|are\s+|appear\s+|remain\s+)?(?:\w+\s+){0,2}?clear",
        r"clear\s+lungs?",
    ),
    "Pleural Effusion": (
        r"(?:costophrenic|cp)\s+(?:angles?|sulc(?:us|i))\s+(?:is\s+|are\s+)?(?:\w+\s+)?(?:sharp|clear|preserved|normal)",
    ),
    "Pneumothorax": (),
    "Edema": (
        r"(?:pulmonary\s+)?vascular(?:ity|ature)?(?:\s+engorgement)?\s+(?:is\s+|are\s+|appears?\s+)?(?:\w+\s+){0,2}?"
        r"(?:within\s+(?:the\s+)?(?:limits\s+of\s+)?)?(?:normal|unremarkable)",
    ),
}


def _compile(table: dict[str, tuple[str, ...]]) -> dict[str, list[re.Pattern[str]]]:
    return {k: [re.compile(rf"\b(?:{p})\b", re.I) for p in v] for k, v in table.items()}


MENTION_PATTERNS: Final = _compile(MENTIONS)
NORMAL_PATTERNS: Final = _compile(NORMAL_STATEMENTS)
