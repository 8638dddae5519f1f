"""Which stored objects are acquired images, and which are derived, synthetic, presentation or documents.

Only acquired images are evidence for a report or default key images. Derived objects (SEG, Parametric
Map, AI explanation captures), synthetic ones (what-if images, burned-in SYNTHETIC), presentation states,
key object selections, SRs (reports and AI results) and encapsulated documents are shown for what they
are and grouped apart. Decided by SOP Class first; Secondary Captures need their header (Image Type,
Burned In Annotation, Series Description), read without pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

ACQUIRED, DERIVED, SYNTHETIC, PRESENTATION, KEY_OBJECTS, REPORT, AI_RESULTS, DOCUMENT = (
    "acquired", "derived", "synthetic", "presentation", "key-objects", "report", "ai-results", "document")
KINDS = (ACQUIRED, DERIVED, SYNTHETIC, PRESENTATION, KEY_OBJECTS, REPORT, AI_RESULTS, DOCUMENT)
NOT_EVIDENCE = frozenset(KINDS) - {ACQUIRED}

SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
KOS_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
PR_PREFIX = "1.2.840.10008.5.1.4.1.1.11."
DOCUMENT_PREFIX = "1.2.840.10008.5.1.4.1.1.104."
DERIVED_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation",
    "1.2.840.10008.5.1.4.1.1.66.7": "Label Map Segmentation",
    "1.2.840.10008.5.1.4.1.1.30": "Parametric Map",
    "1.2.840.10008.5.1.4.1.1.66.5": "Surface Segmentation",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT Structure Set",
}
SC_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
NON_IMAGE_MODALITIES = {"SR": REPORT, "KO": KEY_OBJECTS, "PR": PRESENTATION, "DOC": DOCUMENT, "SEG": DERIVED,
                        "RTSTRUCT": DERIVED}
AI_SERIES_MARKERS = ("AI RESULTS", "AI EXPLANATION")
SYNTHETIC_MARKERS = ("SYNTHETIC",)


def kind_of(sop_class_uid: str, modality: str = "", series_description: str = "",
            header: Dataset | None = None) -> str:
    """One of KINDS. `header` (any Dataset with the image's attributes) refines Secondary Captures."""
    uid, desc = str(sop_class_uid or ""), str(series_description or "").upper()
    if any(m in desc for m in SYNTHETIC_MARKERS):
        return SYNTHETIC
    if uid == KOS_CLASS:
        return KEY_OBJECTS
    if uid.startswith(SR_PREFIX):
        return AI_RESULTS if desc.startswith("AI RESULTS") else REPORT
    if uid.startswith(PR_PREFIX):
        return PRESENTATION
    if uid.startswith(DOCUMENT_PREFIX):
        return DOCUMENT
    if uid in DERIVED_CLASSES:
        return DERIVED
    if any(m in desc for m in AI_SERIES_MARKERS):
        return DERIVED
    if not uid and modality.upper() in NON_IMAGE_MODALITIES:
        return NON_IMAGE_MODALITIES[modality.upper()]
    if header is not None:
        image_type = [str(v).upper() for v in (header.get("ImageType") or [])]
        burned = str(header.get("BurnedInAnnotation", "")).upper() == "YES"
        if burned and any(m in str(header.get("ImageComments", "")).upper() for m in SYNTHETIC_MARKERS):
            return SYNTHETIC
        if uid.startswith(SC_PREFIX) and image_type[:1] == ["DERIVED"]:
            return DERIVED
    return ACQUIRED


# kind_of_file's answers for files whose header it read, by path (and the file's mtime and size, so a file
# replaced in place is read again): each study open classifies the first file of every series, ~5-15 ms of
# header read each on the GUI thread under load; the worklist warms it for the studies it lists
_HEADER_KINDS: dict[tuple[str, str, str, str], tuple[tuple[int, int], str]] = {}
_HEADER_KINDS_MAX = 20000


def kind_of_file(path: str | Path, sop_class_uid: str = "", modality: str = "", series_description: str = "") -> str:
    """kind_of with the header read from `path` (no pixels) when the SOP Class needs it; an unreadable
    file is not evidence (derived) rather than a crash."""
    uid = str(sop_class_uid or "")
    quick = kind_of(uid, modality, series_description)
    if quick != ACQUIRED or not uid.startswith(SC_PREFIX):
        return quick
    try:
        stat = os.stat(path)
    except OSError:  # a missing file must not be picked as evidence
        return DERIVED
    key, stamp = (os.fspath(path), uid, modality, series_description), (stat.st_mtime_ns, stat.st_size)
    known = _HEADER_KINDS.get(key)
    if known is not None and known[0] == stamp:
        return known[1]
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[
            "ImageType", "BurnedInAnnotation", "ImageComments", "SeriesDescription"])
    except Exception:  # noqa: BLE001 - a missing/broken file must not be picked as evidence
        kind = DERIVED
    else:
        kind = kind_of(uid, modality, str(header.get("SeriesDescription", series_description)), header)
    if len(_HEADER_KINDS) >= _HEADER_KINDS_MAX:
        _HEADER_KINDS.clear()
    _HEADER_KINDS[key] = (stamp, kind)
    return kind


def label(kind: str) -> str:
    return {ACQUIRED: "Images", DERIVED: "Derived (not acquired)", SYNTHETIC: "SYNTHETIC - not for diagnosis",
            PRESENTATION: "Presentation states", KEY_OBJECTS: "Key images", REPORT: "Reports",
            AI_RESULTS: "AI results", DOCUMENT: "Documents"}[kind]
