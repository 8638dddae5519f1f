"""Search criteria and results, shared by the C-FIND and QIDO-RS clients.

Results are plain dataclasses built `from_dataset` (a C-FIND identifier, or a QIDO JSON object turned
into a pydicom Dataset), so the table model and tests never touch DICOM encodings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from app.pacs.errors import PacsConfigError

_DATE_RE = re.compile(r"^\d{8}$")
_WILDCARDS = set("*?")


def _norm_date(value: str | date | None, label: str) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    text = value.strip().replace("-", "")
    if not _DATE_RE.match(text):
        raise PacsConfigError(f"{label} {value!r} is not a date (YYYYMMDD or YYYY-MM-DD)")
    try:
        date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError as exc:
        raise PacsConfigError(f"{label} {value!r} is not a real date") from exc
    return text


@dataclass(frozen=True)
class QueryFilter:
    """What the user searches for; empty fields match anything. Names accept `*` wildcards."""

    patient_name: str = ""
    patient_id: str = ""
    accession: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    study_description: str = ""
    limit: int = 500

    def normalized(self) -> QueryFilter:
        """Validated copy (dates as YYYYMMDD); raises PacsConfigError on bad input before any traffic."""
        d_from = _norm_date(self.date_from, "from-date")
        d_to = _norm_date(self.date_to, "to-date")
        if d_from and d_to and d_from > d_to:
            raise PacsConfigError(f"from-date {d_from} is after to-date {d_to}")
        modality = self.modality.strip().upper()
        if modality and not re.match(r"^[A-Z0-9]{1,16}$", modality):
            raise PacsConfigError(f"modality {self.modality!r} is not a DICOM modality code (e.g. CT, MR, CR)")
        for label, value in (("patient ID", self.patient_id), ("accession", self.accession)):
            if "\\" in value:
                raise PacsConfigError(f"{label} must not contain a backslash")
        if not isinstance(self.limit, int) or self.limit < 1:
            raise PacsConfigError("result limit must be a positive whole number")
        return QueryFilter(
            patient_name=self.patient_name.strip(),
            patient_id=self.patient_id.strip(),
            accession=self.accession.strip(),
            date_from=d_from,
            date_to=d_to,
            modality=modality,
            study_description=self.study_description.strip(),
            limit=self.limit,
        )

    @property
    def date_range(self) -> str:
        """DICOM range matching: "A-B", "A-", "-B", or "" (any)."""
        if not self.date_from and not self.date_to:
            return ""
        if self.date_from == self.date_to:
            return self.date_from
        return f"{self.date_from}-{self.date_to}"

    def name_pattern(self) -> str:
        """Patient name as a DICOM wildcard match: a plain word matches as a prefix ("DOE" -> "DOE*")."""
        name = self.patient_name
        if not name or _WILDCARDS & set(name):
            return name
        return name + "*"

    def description_pattern(self) -> str:
        text = self.study_description
        if not text or _WILDCARDS & set(text):
            return text
        return f"*{text}*"


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value)


def _int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class StudyResult:
    study_uid: str
    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    study_date: str = ""
    study_time: str = ""
    accession: str = ""
    description: str = ""
    modalities: str = ""
    series_count: int | None = None
    instance_count: int | None = None

    @classmethod
    def from_dataset(cls, ds: Dataset) -> StudyResult:
        return cls(
            study_uid=_text(ds, "StudyInstanceUID"),
            patient_name=_text(ds, "PatientName"),
            patient_id=_text(ds, "PatientID"),
            birth_date=_text(ds, "PatientBirthDate"),
            study_date=_text(ds, "StudyDate"),
            study_time=_text(ds, "StudyTime"),
            accession=_text(ds, "AccessionNumber"),
            description=_text(ds, "StudyDescription"),
            modalities=_text(ds, "ModalitiesInStudy"),
            series_count=_int(ds, "NumberOfStudyRelatedSeries"),
            instance_count=_int(ds, "NumberOfStudyRelatedInstances"),
        )

    @property
    def modality_list(self) -> list[str]:
        return [m for m in self.modalities.split("\\") if m]


@dataclass(frozen=True)
class SeriesResult:
    study_uid: str
    series_uid: str
    modality: str = ""
    number: int | None = None
    description: str = ""
    instance_count: int | None = None

    @classmethod
    def from_dataset(cls, ds: Dataset, study_uid: str = "") -> SeriesResult:
        return cls(
            study_uid=_text(ds, "StudyInstanceUID") or study_uid,
            series_uid=_text(ds, "SeriesInstanceUID"),
            modality=_text(ds, "Modality"),
            number=_int(ds, "SeriesNumber"),
            description=_text(ds, "SeriesDescription"),
            instance_count=_int(ds, "NumberOfSeriesRelatedInstances"),
        )


@dataclass(frozen=True)
class InstanceResult:
    """Enough to know what a study holds before retrieving it (progress total, resume)."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str = ""

    @classmethod
    def from_dataset(cls, ds: Dataset, study_uid: str = "") -> InstanceResult:
        return cls(
            study_uid=_text(ds, "StudyInstanceUID") or study_uid,
            series_uid=_text(ds, "SeriesInstanceUID"),
            sop_uid=_text(ds, "SOPInstanceUID"),
            sop_class_uid=_text(ds, "SOPClassUID"),
        )
