"""The exam facts that choose a report template, read from the study database."""

from __future__ import annotations

from sqlalchemy import select

from app.db.models import Series, Study
from app.reports.templates import ExamInfo

NON_IMAGE_MODALITIES = ("SR", "KO", "PR", "DOC", "SEG", "REG")


def exam_info(database, study_uid: str) -> ExamInfo:
    """Modalities and body parts of the study's image series plus its description (empty if unknown)."""
    with database.session() as s:
        study = s.scalar(select(Study).where(Study.study_uid == study_uid))
        if study is None:
            return ExamInfo()
        rows = s.execute(select(Series.modality, Series.body_part).where(Series.study_db_id == study.id)).all()
        mods = [m for m, _ in rows if m and m.upper() not in NON_IMAGE_MODALITIES]
        if not mods and study.modalities:
            mods = [m for m in study.modalities.split("\\") if m and m.upper() not in NON_IMAGE_MODALITIES]
        parts = [b for m, b in rows if b and (m or "").upper() not in NON_IMAGE_MODALITIES]
        return ExamInfo(tuple(dict.fromkeys(m.upper() for m in mods)), tuple(dict.fromkeys(p.upper() for p in parts)),
                        study.description or "")
