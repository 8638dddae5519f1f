"""Images the reader flags "Of Interest" while reading: kept per study, marked like key images from a KOS, and
sent by the app as a Key Object Selection titled (113000, DCM, "Of Interest") - apart from the report's
"For Report Attachment" key images.

The viewer talks to the `InterestStore` protocol; the app backs it with its database (so the viewer never
imports the app), tests and the demo mode with `InMemoryInterestStore`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

OF_INTEREST = "Of Interest"
LOCAL_TITLE = "Of Interest (flagged here)"  # how the image mark names a flag not yet sent as a KOS


@dataclass(frozen=True)
class InterestRef:
    """One flagged image: what a KOS needs to reference it."""

    study_uid: str
    series_uid: str
    sop_class_uid: str
    sop_instance_uid: str


class InterestStore(Protocol):
    """Persist the "Of Interest" flags of a study."""

    def load(self, study_uid: str) -> list[InterestRef]: ...

    def set(self, ref: InterestRef, on: bool) -> None: ...


class InMemoryInterestStore:
    """Flags for a viewer used without a database (tests, the bundle's demo mode): kept for the session."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, InterestRef]] = {}

    def load(self, study_uid: str) -> list[InterestRef]:
        return list(self._data.get(study_uid, {}).values())

    def set(self, ref: InterestRef, on: bool) -> None:
        study = self._data.setdefault(ref.study_uid, {})
        if on:
            study[ref.sop_instance_uid] = ref
        else:
            study.pop(ref.sop_instance_uid, None)


def interest_ref(dataset: object) -> InterestRef:
    """The reference of the image in `dataset` (a pydicom header); ValueError naming what is missing."""
    get = getattr(dataset, "get", None)
    if get is None:
        raise ValueError("no DICOM header to flag")
    values = {k: str(get(k, "") or "") for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID",
                                                   "SOPInstanceUID")}
    missing = [k for k, v in values.items() if not v]
    if missing:
        raise ValueError(f"the image cannot be flagged: its header lacks {', '.join(missing)}")
    return InterestRef(values["StudyInstanceUID"], values["SeriesInstanceUID"], values["SOPClassUID"],
                       values["SOPInstanceUID"])
