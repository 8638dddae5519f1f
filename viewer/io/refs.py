"""Plain references to studies and series on disk: what the app hands the viewer to open.

The database (app) builds these; the viewer (no app import) only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SYNTHETIC_PREFIX = "SYNTHETIC"


@dataclass(frozen=True)
class SeriesRef:
    """One series: its files in display order (by Instance Number / position when known)."""

    series_uid: str
    modality: str = ""
    description: str = ""
    number: int | None = None
    paths: tuple[Path, ...] = ()

    @property
    def synthetic(self) -> bool:
        """A what-if image series (RadStation names them "SYNTHETIC ... NOT FOR DIAGNOSIS"): shown in its own
        group and never hung beside acquired images."""
        return self.description.upper().startswith(SYNTHETIC_PREFIX)


@dataclass(frozen=True)
class StudyRef:
    """One study with its series, enough to open it in the viewer and label it."""

    study_uid: str
    patient_name: str = ""
    patient_id: str = ""
    study_date: str = ""
    accession: str = ""
    description: str = ""
    series: tuple[SeriesRef, ...] = field(default_factory=tuple)
    # presentation states and key object selections stored with the study (applied/marked on display)
    object_paths: tuple[Path, ...] = ()
    # series of derived objects (SEG, Parametric Map, AI captures): listed apart, under their own heading
    derived_series: tuple[str, ...] = ()
