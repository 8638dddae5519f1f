"""Read-side queries: the worklist search and the StudyRef the viewer opens.

Kept apart from the widgets so they are tested without a window and reused by the CLI and PACS parts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.orm import Session

from app.db.models import AiDraft, Instance, Patient, Series, Study
from app.db.study_flags import attention_text, flags_by_study_uid
from app.paths import data_dir
from viewer.io.refs import SeriesRef, StudyRef


class StudyNotFound(LookupError):
    """No study with that Study Instance UID is in the database."""


@dataclass(frozen=True)
class StudyRow:
    """One worklist line."""

    study_uid: str
    patient_name: str
    patient_id: str
    study_date: date | None
    study_time: str
    modalities: str
    description: str
    accession: str
    series_count: int
    instance_count: int
    report_status: str
    has_ai_draft: bool
    attention: str = ""  # why the study needs a look: incomplete objects, conflicting copies, ... ('' = none)


_series_count = (
    select(func.count(Series.id)).where(Series.study_db_id == Study.id).correlate(Study).scalar_subquery()
)
_instance_count = (
    select(func.count(Instance.id))
    .join(Series, Instance.series_db_id == Series.id)
    .where(Series.study_db_id == Study.id)
    .correlate(Study)
    .scalar_subquery()
)
_has_draft = exists().where(AiDraft.study_db_id == Study.id).correlate(Study)

SORT_KEYS: dict[str, Any] = {
    "date": Study.study_date,
    "name": Patient.name,
    "patient_id": Patient.patient_id,
    "modality": Study.modalities,
    "description": Study.description,
    "accession": Study.accession,
    "series": _series_count,
    "images": _instance_count,
    "report_status": Study.report_status,
    "ai_draft": _has_draft,
}


def _pattern(text: str) -> str:
    """User text to a LIKE pattern: substring match, '*' and '?' as wildcards, LIKE's own escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%" + escaped.replace("*", "%").replace("?", "_") + "%"


def _like(column: Any, text: str) -> ColumnElement[bool]:
    return column.ilike(_pattern(text), escape="\\")


def parse_date(value: date | datetime | str | None) -> date | None:
    """Accept a date, 'YYYYMMDD' or 'YYYY-MM-DD'; raise ValueError with the offending text otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    digits = value.strip().replace("-", "").replace(".", "").replace("/", "")
    try:
        if len(digits) != 8:
            raise ValueError
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise ValueError(f"not a date: {value!r} (use YYYY-MM-DD)") from None


def search_studies(
    session: Session,
    *,
    name: str = "",
    patient_id: str = "",
    accession: str = "",
    date_from: date | datetime | str | None = None,
    date_to: date | datetime | str | None = None,
    modality: str = "",
    sort: str = "-date",
    limit: int | None = 1000,
) -> list[StudyRow]:
    """Studies matching every given filter. Name words match in any order ("john doe" finds DOE^JOHN).

    `sort` is a key of SORT_KEYS, '-' in front for descending (default: newest first).
    """
    key = sort.removeprefix("-")
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort key {sort!r}; use one of {sorted(SORT_KEYS)}")
    stmt = select(
        Study.study_uid,
        Patient.name,
        Patient.patient_id,
        Study.study_date,
        Study.study_time,
        Study.modalities,
        Study.description,
        Study.accession,
        _series_count.label("series_count"),
        _instance_count.label("instance_count"),
        Study.report_status,
        _has_draft.label("has_ai_draft"),
    ).join(Patient, Study.patient_db_id == Patient.id)
    conditions: list[ColumnElement[bool]] = []
    for word in name.replace("^", " ").upper().split():
        conditions.append(_like(Patient.name_search, word))
    if patient_id.strip():
        conditions.append(_like(Patient.patient_id, patient_id.strip()))
    if accession.strip():
        conditions.append(_like(Study.accession, accession.strip()))
    start, end = parse_date(date_from), parse_date(date_to)
    if start:
        conditions.append(Study.study_date >= start)
    if end:
        conditions.append(Study.study_date <= end)
    if modality.strip():
        wanted = modality.strip().upper()
        conditions.append(exists().where(and_(Series.study_db_id == Study.id, Series.modality == wanted)))
    if conditions:
        stmt = stmt.where(and_(*conditions))
    column = SORT_KEYS[key]
    order = column.desc() if sort.startswith("-") else column.asc()
    tiebreak = Study.study_time.desc() if sort.startswith("-") else Study.study_time.asc()
    stmt = stmt.order_by(order, tiebreak, Study.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = [
        StudyRow(
            study_uid=r[0],
            patient_name=r[1],
            patient_id=r[2],
            study_date=r[3],
            study_time=r[4],
            modalities=r[5],
            description=r[6],
            accession=r[7],
            series_count=int(r[8] or 0),
            instance_count=int(r[9] or 0),
            report_status=r[10],
            has_ai_draft=bool(r[11]),
        )
        for r in session.execute(stmt)
    ]
    flags = flags_by_study_uid(session, [r.study_uid for r in rows])  # one query for the listed studies
    return [replace(r, attention=attention_text(flags[r.study_uid])) if r.study_uid in flags else r for r in rows]


def _instance_order(inst: Instance) -> tuple[float, float, str]:
    number = inst.instance_number if inst.instance_number is not None else math.inf
    along = inst.position_along_normal()
    return (number, along if along is not None else 0.0, inst.sop_instance_uid)


def _derived_rank(series: Series, store: Path) -> int:
    """0 for acquired images, 1 for derived / synthetic / non-image objects: the viewer lists those after
    the acquired series, apart (app.dicom_objects.classify)."""
    from app.dicom_objects.classify import ACQUIRED, kind_of_file

    first = min(series.instances, key=_instance_order, default=None)
    if first is None:
        return 1
    kind = kind_of_file(store.joinpath(*first.file_path.split("/")), first.sop_class_uid, series.modality,
                        series.description)
    return 0 if kind == ACQUIRED else 1


def study_ref(session: Session, study_uid: str, *, images_only: bool = True) -> StudyRef:
    """The study as the viewer opens it: series by Series Number, instances by Instance Number then
    position along the slice normal. Non-image objects (SR, RT plans) are left out unless asked for."""
    study = session.scalar(select(Study).where(Study.study_uid == study_uid))
    if study is None:
        raise StudyNotFound(f"study {study_uid} is not in the database")
    store = Path(session.info.get("store_dir") or (data_dir() / "store"))
    series_refs: list[SeriesRef] = []
    ordered = sorted(
        study.series,
        key=lambda s: (_derived_rank(s, store), s.series_number if s.series_number is not None else math.inf,
                       s.series_uid),
    )
    for series in ordered:
        instances = [i for i in series.instances if not images_only or i.number_of_frames > 0]
        if not instances:
            continue
        instances.sort(key=_instance_order)
        series_refs.append(
            SeriesRef(
                series_uid=series.series_uid,
                modality=series.modality,
                description=series.description,
                number=series.series_number,
                paths=tuple(store.joinpath(*i.file_path.split("/")) for i in instances),
            )
        )
    date_text = study.study_date.strftime("%Y%m%d") if study.study_date else ""
    return StudyRef(
        study_uid=study.study_uid,
        patient_name=study.patient.name,
        patient_id=study.patient.patient_id,
        study_date=date_text,
        accession=study.accession,
        description=study.description,
        series=tuple(series_refs),
    )
