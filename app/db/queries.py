"""Read-side queries: the worklist search and the StudyRef the viewer opens.

Kept apart from the widgets so they are tested without a window and reused by the CLI and PACS parts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.sql.selectable import Join

from app.db.models import Instance, Patient, PatientNameWord, Series, Study
from app.db.search_terms import name_words, prefix_match, upper_key
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


SORT_KEYS: dict[str, Any] = {
    "date": Study.study_date,
    "name": Patient.name,
    "patient_id": Patient.patient_id,
    "modality": Study.modalities,
    "description": Study.description,
    "accession": Study.accession,
    "series": Study.series_count,
    "images": Study.instance_count,
    "report_status": Study.report_status,
    "ai_draft": Study.has_ai_draft,
}
_PATIENT_SORTS = frozenset({"name", "patient_id"})
# A modality with more series than this is filtered while reading studies newest first (the page fills
# early); a rarer one through the series index (few rows to look up, then the page is sorted).
COMMON_MODALITY_SERIES = 5000


class _PatientFirstJoin(Join):
    """patient JOIN study that SQLite must run patient-first (CROSS JOIN): for the name / patient ID sorts,
    whose order the patient indexes give; left to itself SQLite reads studies first and sorts them all."""

    inherit_cache = True


@compiles(_PatientFirstJoin, "sqlite")
def _patient_first_sqlite(join: _PatientFirstJoin, compiler: Any, **kw: Any) -> str:
    kw["asfrom"] = True
    return (f"{compiler.process(join.left, **kw)} CROSS JOIN {compiler.process(join.right, **kw)} "
            f"ON {compiler.process(join.onclause, **kw)}")


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


def worklist_statement(
    *,
    name: str = "",
    patient_id: str = "",
    accession: str = "",
    date_from: date | datetime | str | None = None,
    date_to: date | datetime | str | None = None,
    modality: str = "",
    sort: str = "-date",
    limit: int | None = 1000,
    dialect: str = "sqlite",
    common_modality: bool = False,
) -> Select[Any]:
    """The worklist query (see `search_studies`); apart so benchmarks and tests can look at its plan.

    Counts are the study's kept columns and every sort key has a (key, study time) index, so a sorted
    page is an index range scan stopped by LIMIT, whatever the size of the database; every filter is an
    index range too (app.db.search_terms). `dialect` picks the expressions that database's indexes hold;
    `common_modality` filters the modality on the study row instead of through the series index.
    """
    key = sort.removeprefix("-")
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort key {sort!r}; use one of {sorted(SORT_KEYS)}")
    columns = (Study.study_uid, Patient.name, Patient.patient_id, Study.study_date, Study.study_time,
               Study.modalities, Study.description, Study.accession, Study.series_count, Study.instance_count,
               Study.report_status, Study.has_ai_draft)
    if key in _PATIENT_SORTS:
        on = Study.patient_db_id == Patient.id
        stmt = select(*columns).select_from(_PatientFirstJoin(Patient.__table__, Study.__table__, on))
    else:
        stmt = select(*columns).join(Patient, Study.patient_db_id == Patient.id)
    conditions: list[ColumnElement[bool]] = []
    for word in name_words(name):
        words = select(PatientNameWord.patient_db_id).where(prefix_match(PatientNameWord.word, word))
        conditions.append(Study.patient_db_id.in_(words))
    if patient_id.strip():
        ids = select(Patient.id).where(prefix_match(upper_key(Patient.patient_id, dialect), patient_id.strip()))
        conditions.append(Study.patient_db_id.in_(ids))
    if accession.strip():
        conditions.append(prefix_match(upper_key(Study.accession, dialect), accession.strip()))
    start, end = parse_date(date_from), parse_date(date_to)
    if start:
        conditions.append(Study.study_date >= start)
    if end:
        conditions.append(Study.study_date <= end)
    if modality.strip():
        wanted = modality.strip().upper()
        if common_modality:  # one of the study's own backslash-joined modalities ("CT\\SR")
            token = "%\\" + wanted.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "\\%"
            conditions.append((literal("\\") + Study.modalities + literal("\\")).like(token, escape="!"))
        else:
            conditions.append(Study.id.in_(select(Series.study_db_id).where(Series.modality == wanted)))
    if conditions:
        stmt = stmt.where(and_(*conditions))
    # All three terms in one direction, so the (key, study_time) index is read in order (or backwards).
    terms = (SORT_KEYS[key], Study.study_time, Study.id)
    stmt = stmt.order_by(*(t.desc() if sort.startswith("-") else t.asc() for t in terms))
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt


def search_studies(session: Session, **filters: Any) -> list[StudyRow]:
    """Studies matching every given filter. Name words match in any order ("john doe" finds DOE^JOHN).

    Keywords: name, patient_id, accession, date_from, date_to, modality, sort (a key of SORT_KEYS, '-' in
    front for descending; default newest first) and limit (default 1000; None for all). Words match from
    the start of a name word / ID / accession, case-insensitively; '*' and '?' are wildcards.
    """
    dialect = session.get_bind().dialect.name
    wanted = str(filters.get("modality") or "").strip().upper()
    if wanted:  # how common the modality is decides the plan; counting stops at the threshold
        sample = select(Series.id).where(Series.modality == wanted).limit(COMMON_MODALITY_SERIES).subquery()
        seen = session.scalar(select(func.count()).select_from(sample)) or 0
        filters = {**filters, "common_modality": seen >= COMMON_MODALITY_SERIES}
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
        for r in session.connection().execute(worklist_statement(dialect=dialect, **filters))  # Core rows: no ORM
    ]
    flags = flags_by_study_uid(session, [r.study_uid for r in rows])  # one query for the listed studies
    return [replace(r, attention=attention_text(flags[r.study_uid])) if r.study_uid in flags else r for r in rows]


def _instance_order(inst: Instance) -> tuple[float, float, str]:
    number = inst.instance_number if inst.instance_number is not None else math.inf
    along = inst.position_along_normal()
    return (number, along if along is not None else 0.0, inst.sop_instance_uid)


def _series_kind(series: Series, store: Path) -> str:
    """app.dicom_objects.classify's kind of the series' first object ('derived' for an empty series)."""
    from app.dicom_objects.classify import DERIVED, kind_of_file

    first = min(series.instances, key=_instance_order, default=None)
    if first is None:
        return DERIVED
    return kind_of_file(store.joinpath(*first.file_path.split("/")), first.sop_class_uid, series.modality,
                        series.description)


def warm_series_kinds(session: Session, study_uids: list[str], cancelled: Any = None) -> int:
    """Classify the series of these studies now (off the GUI thread) so that `study_ref` finds their kinds
    cached when one is opened (app.dicom_objects.classify); `cancelled()` stops early. Returns how many series
    were classified."""
    store = Path(session.info.get("store_dir") or (data_dir() / "store"))
    done = 0
    for uid in study_uids:
        if cancelled is not None and cancelled():
            break
        study = session.scalar(select(Study).where(Study.study_uid == uid))
        for series in study.series if study is not None else []:
            _series_kind(series, store)
            done += 1
    return done


def _derived_rank(kind: str) -> int:
    """0 for acquired images, 1 for derived / synthetic / non-image objects: the viewer lists those after
    the acquired series, apart (app.dicom_objects.classify)."""
    from app.dicom_objects.classify import ACQUIRED

    return 0 if kind == ACQUIRED else 1


def _is_display_object(sop_class_uid: str | None) -> bool:
    """Presentation states and key object selections: the viewer applies/marks them on the images."""
    from app.dicom_objects.classify import KOS_CLASS, PR_PREFIX

    uid = str(sop_class_uid or "")
    return uid == KOS_CLASS or uid.startswith(PR_PREFIX)


def study_ref(session: Session, study_uid: str, *, images_only: bool = True) -> StudyRef:
    """The study as the viewer opens it: series by Series Number, instances by Instance Number then
    position along the slice normal. Non-image objects (SR, RT plans) are left out unless asked for.

    Runs on the GUI thread when a study is opened: the patient, series and instances come in three
    queries (eager loads) instead of one lazy query per series."""
    study = session.scalar(
        select(Study).where(Study.study_uid == study_uid).options(
            joinedload(Study.patient), selectinload(Study.series).selectinload(Series.instances)))
    if study is None:
        raise StudyNotFound(f"study {study_uid} is not in the database")
    store = Path(session.info.get("store_dir") or (data_dir() / "store"))
    from app.dicom_objects.classify import DERIVED

    series_refs: list[SeriesRef] = []
    kinds = {s.series_uid: _series_kind(s, store) for s in study.series}
    ordered = sorted(
        study.series,
        key=lambda s: (_derived_rank(kinds[s.series_uid]), s.series_number if s.series_number is not None
                       else math.inf, s.series_uid),
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
    objects = tuple(store.joinpath(*i.file_path.split("/")) for s in study.series for i in s.instances
                    if _is_display_object(i.sop_class_uid))
    return StudyRef(
        study_uid=study.study_uid,
        patient_name=study.patient.name,
        patient_id=study.patient.patient_id,
        study_date=date_text,
        accession=study.accession,
        description=study.description,
        series=tuple(series_refs),
        object_paths=objects,
        derived_series=tuple(r.series_uid for r in series_refs if kinds[r.series_uid] == DERIVED),
    )
