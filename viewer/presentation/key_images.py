"""Key images as another system marked them: a Key Object Selection Document (KOS) read back.

A KOS names its purpose by its title ("For Report Attachment", "Of Interest", "Quality Issue", ...) and
references images by SOP Instance UID (optionally frames); the Current Requested Procedure Evidence
Sequence says which series each one is in, so the series strip can count them without opening images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

KOS_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"


class KeyObjectReadError(ValueError):
    """Not a KOS, or one without references (the message names the file)."""


@dataclass(frozen=True)
class KeySelection:
    """One KOS: its title, who made it, and the images it selects (SOP UID -> series UID or '')."""

    sop_instance_uid: str
    title: str
    observer: str = ""
    description: str = ""
    date: str = ""
    images: dict[str, str] = field(default_factory=dict)
    frames: dict[str, tuple[int, ...]] = field(default_factory=dict)  # SOP UID -> 1-based frames, if limited

    @classmethod
    def from_dataset(cls, ds: Dataset, source: str = "") -> KeySelection:
        name = source or str(ds.get("SOPInstanceUID", "key object selection"))
        if str(ds.get("SOPClassUID", "")) != KOS_CLASS:
            raise KeyObjectReadError(f"{name}: not a Key Object Selection Document")
        try:
            return cls._read(ds, name)
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
            raise KeyObjectReadError(f"{name}: malformed key object selection ({exc})") from exc

    @classmethod
    def from_file(cls, path: str | Path) -> KeySelection:
        try:
            ds = pydicom.dcmread(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear message
            raise KeyObjectReadError(f"{path}: not a readable DICOM file ({exc})") from exc
        return cls.from_dataset(ds, str(path))

    @classmethod
    def _read(cls, ds: Dataset, name: str) -> KeySelection:
        series_of: dict[str, str] = {}
        for study in ds.get("CurrentRequestedProcedureEvidenceSequence", []) or []:
            for series in study.get("ReferencedSeriesSequence", []) or []:
                for ref in series.get("ReferencedSOPSequence", []) or []:
                    series_of[str(ref.ReferencedSOPInstanceUID)] = str(series.SeriesInstanceUID)
        images: dict[str, str] = {}
        frames: dict[str, tuple[int, ...]] = {}
        description = ""
        observer = ""

        def walk(items) -> None:  # noqa: ANN001
            nonlocal description, observer
            for item in items or []:
                vtype = str(item.get("ValueType", ""))
                if vtype in ("IMAGE", "COMPOSITE"):
                    for ref in item.get("ReferencedSOPSequence", []) or []:
                        uid = str(ref.ReferencedSOPInstanceUID)
                        if vtype == "IMAGE":
                            images[uid] = series_of.get(uid, "")
                            numbers = ref.get("ReferencedFrameNumber")
                            if numbers not in (None, ""):
                                seq = list(numbers) if isinstance(numbers, (MultiValue, list, tuple)) else [numbers]
                                frames[uid] = tuple(int(n) for n in seq)
                elif vtype == "TEXT" and not description:
                    description = str(item.get("TextValue", ""))
                elif vtype == "PNAME" and not observer:
                    observer = str(item.get("PersonName", ""))
                walk(item.get("ContentSequence"))

        walk(ds.get("ContentSequence"))
        if not images:
            raise KeyObjectReadError(f"{name}: selects no image")
        title = ds.ConceptNameCodeSequence[0].CodeMeaning if ds.get("ConceptNameCodeSequence") else "Key images"
        return cls(str(ds.SOPInstanceUID), str(title), observer.replace("^", " ").strip(), description,
                   str(ds.get("ContentDate", "") or ""), images, frames)
