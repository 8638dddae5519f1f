"""Storing counterfactual images: a new SYNTHETIC series in the source's study, through the normal
import path (so the worklist, the viewer and PACS send see an ordinary derived series), and the
queries that keep such series apart from acquired images (report export, key images)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from app.counterfactual.secondary_capture import (
    SERIES_NUMBER_BASE,
    SERIES_PREFIX,
    CounterfactualInfo,
    build_secondary_capture,
    is_synthetic_description,
)
from app.db.database import Database
from app.db.models import Instance, Series, Study
from app.importer import ImportService


class CounterfactualStoreError(RuntimeError):
    """The derived images could not be stored (the message says which and why)."""


@dataclass(frozen=True)
class StoredSeries:
    study_uid: str
    series_uid: str
    series_number: int
    sop_instance_uids: tuple[str, ...]


def _next_series_number(database: Database, study_uid: str) -> int:
    with database.session() as s:
        top = s.scalar(select(func.max(Series.series_number)).join(Series.study)
                       .where(Study.study_uid == study_uid, Series.description.like(f"{SERIES_PREFIX}%")))
    return max(SERIES_NUMBER_BASE, (top or SERIES_NUMBER_BASE - 1) + 1)


def store_counterfactuals(database: Database, source: Dataset, images: Sequence[np.ndarray],
                          infos: Sequence[CounterfactualInfo]) -> StoredSeries:
    """One new synthetic series holding `images` (one instance each, burned-in warning added)."""
    if not images:
        raise ValueError("no images to store")
    if len(images) != len(infos):
        raise ValueError("give one CounterfactualInfo per image")
    study_uid = str(source.get("StudyInstanceUID", ""))
    series_uid = generate_uid()
    number = _next_series_number(database, study_uid)
    service = ImportService(database)
    uids = []
    for k, (img, info) in enumerate(zip(images, infos, strict=True), start=1):
        ds = build_secondary_capture(source, img, info, series_uid=series_uid, series_number=number,
                                     instance_number=k)
        outcome = service.import_dataset(ds)
        if not outcome.ok:
            raise CounterfactualStoreError(f"storing counterfactual {k} failed: {outcome.reason}")
        uids.append(ds.SOPInstanceUID)
    return StoredSeries(study_uid, series_uid, number, tuple(uids))


def synthetic_series_uids(database: Database, study_uid: str) -> set[str]:
    """Series UIDs of the study that hold synthetic (counterfactual) images."""
    with database.session() as s:
        rows = s.execute(select(Series.series_uid, Series.description).join(Series.study)
                         .where(Study.study_uid == study_uid)).all()
    return {uid for uid, desc in rows if is_synthetic_description(desc)}


def acquired_instance_uids(database: Database, study_uid: str) -> list[str]:
    """SOP Instance UIDs of the study's images that are not synthetic: what report export may take by
    default (synthetic ones only when the user attaches them explicitly as illustrations)."""
    with database.session() as s:
        rows = s.execute(select(Instance.sop_instance_uid, Series.description).join(Instance.series)
                         .join(Series.study).where(Study.study_uid == study_uid)
                         .order_by(Series.series_number, Instance.instance_number)).all()
    return [uid for uid, desc in rows if not is_synthetic_description(desc)]
