"""Header rules of the input gate: what the DICOM header says about whether an image is a frontal chest
radiograph, the only input the engine was trained to read.

Each rule gives a plain reason when it rules an image out ("Modality MR: ..."); attributes that are
missing or say nothing decisive (Modality OT, no View Position) are left to the image check and noted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Attributes the gate reads (DICOM keywords), copied from a dataset by `header_of`.
HEADER_KEYS = ("Modality", "BodyPartExamined", "ViewPosition", "ImageType", "PhotometricInterpretation",
               "NumberOfFrames", "SeriesDescription", "BurnedInAnnotation", "SOPClassUID")

PROJECTION_MODALITIES = frozenset({"CR", "DX", "DR", "RG"})
UNDECIDED_MODALITIES = frozenset({"", "OT", "SC"})  # secondary captures of anything: the image decides
MODALITY_NAMES = {"CT": "CT", "MR": "MR", "US": "ultrasound", "NM": "nuclear medicine", "PT": "PET",
                  "MG": "mammography", "XA": "angiography", "RF": "fluoroscopy", "IO": "intra-oral radiograph",
                  "PX": "panoramic dental radiograph", "OP": "ophthalmic photograph", "XC": "photograph",
                  "ES": "endoscopy", "SM": "microscopy", "SEG": "segmentation", "RTDOSE": "radiotherapy dose",
                  "RTIMAGE": "radiotherapy image", "BMD": "bone densitometry", "OCT": "OCT"}
CHEST_WORDS = ("CHEST", "THORAX", "LUNG", "THORAC")
FRONTAL_VIEWS = frozenset({"PA", "AP"})
LATERAL_VIEWS = frozenset({"LL", "RL", "LAT", "LATERAL", "LEFT LATERAL", "RIGHT LATERAL", "LLD", "RLD"})
OBLIQUE_VIEWS = frozenset({"LAO", "RAO", "LPO", "RPO", "OBL", "OBLIQUE"})
GREY_PHOTOMETRICS = frozenset({"MONOCHROME1", "MONOCHROME2", ""})


@dataclass(frozen=True)
class HeaderCheck:
    """`in_scope` False when a rule rules the image out; `reasons` say why, `notes` what was undecided."""

    in_scope: bool
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    checked: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"in_scope": self.in_scope, "reasons": list(self.reasons), "notes": list(self.notes),
                "checked": dict(self.checked)}


def header_of(ds: Any) -> dict[str, Any]:
    """The attributes of HEADER_KEYS of a pydicom Dataset as plain JSON-able values (multi-values as lists)."""
    out: dict[str, Any] = {}
    for key in HEADER_KEYS:
        value = ds.get(key) if hasattr(ds, "get") else None
        if value is None or value == "":
            continue
        if key == "ImageType":
            out[key] = [str(v).strip() for v in (value if isinstance(value, list | tuple) or
                                                 type(value).__name__ == "MultiValue" else [value])]
        elif key == "NumberOfFrames":
            try:
                out[key] = int(value)
            except (TypeError, ValueError):
                continue
        else:
            out[key] = str(value).strip()
    return out


def _upper(header: Mapping[str, Any], key: str) -> str:
    return str(header.get(key) or "").strip().upper()


def check_header(header: Mapping[str, Any] | None) -> HeaderCheck:
    """Apply the header rules. An empty or missing header (a PNG, pixels without a file) rules nothing out:
    it is noted, and the image check decides."""
    if not header:
        return HeaderCheck(True, (), ("no DICOM header: modality, body part and view are not known",))
    reasons: list[str] = []
    notes: list[str] = []
    modality = _upper(header, "Modality")
    if modality in PROJECTION_MODALITIES:
        pass
    elif modality in UNDECIDED_MODALITIES:
        notes.append(f"Modality {modality or 'not stated'}: the header does not say it is a radiograph")
    else:
        what = MODALITY_NAMES.get(modality, modality)
        reasons.append(f"Modality {modality} ({what}): the engine reads chest radiographs (CR/DX) only")
    body = _upper(header, "BodyPartExamined")
    if body and not any(w in body for w in CHEST_WORDS):
        reasons.append(f"Body Part Examined {body}: the engine reads the chest only")
    elif not body:
        notes.append("Body Part Examined not stated")
    view = _upper(header, "ViewPosition")
    if view in LATERAL_VIEWS:
        reasons.append(f"View Position {view}: a lateral view; the engine reads frontal (PA/AP) views only")
    elif view in OBLIQUE_VIEWS:
        reasons.append(f"View Position {view}: an oblique view; the engine reads frontal (PA/AP) views only")
    elif view and view not in FRONTAL_VIEWS:
        notes.append(f"View Position {view}: not PA or AP")
    elif not view:
        notes.append("View Position not stated")
    image_type = [str(v).strip().upper() for v in (header.get("ImageType") or [])]
    if any(v in ("LOCALIZER", "SCOUT") for v in image_type):
        reasons.append("Image Type LOCALIZER: a scout image, not a diagnostic radiograph")
    burned_in = _upper(header, "BurnedInAnnotation") == "YES"
    synthetic = "DERIVED" in image_type and burned_in and _upper(header, "SeriesDescription").startswith("SYNTHETIC")
    if "AI_EXPLANATION" in image_type or synthetic:  # what app.counterfactual / explain.export write
        reasons.append("a synthetic or annotated image RadStation generated, not an acquired radiograph")
    elif image_type[:2] == ["DERIVED", "SECONDARY"] and burned_in:
        reasons.append("a secondary capture with burned-in annotation (a screen capture or generated image)")
    photometric = _upper(header, "PhotometricInterpretation")
    if photometric not in GREY_PHOTOMETRICS:
        reasons.append(f"Photometric Interpretation {photometric}: a colour image; radiographs are greyscale")
    frames = header.get("NumberOfFrames")
    if isinstance(frames, int) and frames > 1:
        reasons.append(f"{frames} frames: a cine or volume, not a single radiograph")
    return HeaderCheck(not reasons, tuple(reasons), tuple(notes),
                       {k: header[k] for k in HEADER_KEYS if k in header})
