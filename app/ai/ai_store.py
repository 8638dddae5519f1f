"""Drafts and question/answer history in the study database, with the provenance to trace each one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.ai.study_images import PROJECTION_MODALITIES, StudyImage, load_study_images
from app.db.database import Database
from app.db.models import AiDraft, Instance, QaMessage, Series, Study


def _study_id(session: Session, study_uid: str) -> int | None:
    return session.scalar(select(Study.id).where(Study.study_uid == study_uid))


def save_draft(db: Database, study_uid: str, result: dict[str, Any], images_used: list[str]) -> int | None:
    """Store a drafted report; None when the study is not in the database (e.g. opened from a folder)."""
    prov = result.get("provenance") or {}
    with db.session() as s:
        sid = _study_id(s, study_uid)
        if sid is None:
            return None
        row = AiDraft(study_db_id=sid, engine=str(prov.get("engine", "")), weights_hash=str(prov.get("weights_hash", "")),
                      seed=int(result.get("seed", 0)), findings=str(result.get("findings", "")),
                      impression=str(result.get("impression", "")),
                      token_uncertainty={"tokens": result.get("tokens", []), "confidence": result.get("confidence"),
                                         "steps": result.get("steps"), "model": prov.get("model", ""),
                                         "device": prov.get("device", "")},
                      images_used=list(images_used))
        s.add(row)
        s.flush()
        return int(row.id)


def drafts_for(db: Database, study_uid: str) -> list[dict[str, Any]]:
    """All drafts of a study, newest first."""
    with db.session() as s:
        rows = s.scalars(select(AiDraft).join(Study, Study.id == AiDraft.study_db_id)
                         .where(Study.study_uid == study_uid).order_by(AiDraft.id.desc())).all()
        return [{"id": r.id, "engine": r.engine, "weights_hash": r.weights_hash, "seed": r.seed,
                 "created_at": r.created_at, "findings": r.findings, "impression": r.impression,
                 "token_uncertainty": r.token_uncertainty, "images_used": list(r.images_used or [])} for r in rows]


def save_qa(db: Database, study_uid: str, question: str, answer: str, confidence: float | None,
            engine: str) -> int | None:
    with db.session() as s:
        sid = _study_id(s, study_uid)
        if sid is None:
            return None
        row = QaMessage(study_db_id=sid, question=question, answer=answer, confidence=confidence, engine=engine)
        s.add(row)
        s.flush()
        return int(row.id)


def qa_history(db: Database, study_uid: str) -> list[dict[str, Any]]:
    """The study's questions and answers, oldest first (chat order)."""
    with db.session() as s:
        rows = s.scalars(select(QaMessage).join(Study, Study.id == QaMessage.study_db_id)
                         .where(Study.study_uid == study_uid).order_by(QaMessage.id)).all()
        return [{"id": r.id, "question": r.question, "answer": r.answer, "confidence": r.confidence,
                 "engine": r.engine, "created_at": r.created_at} for r in rows]


def study_image_paths(db: Database, study_uid: str) -> list[Path]:
    """Files of the study's single-frame images, projection radiographs (DX/CR...) when it has any."""
    with db.session() as s:
        rows = s.execute(select(Instance.file_path, Series.modality).join(Series, Series.id == Instance.series_db_id)
                         .join(Study, Study.id == Series.study_db_id)
                         .where(Study.study_uid == study_uid, Instance.number_of_frames == 1)
                         .order_by(Series.series_number, Instance.instance_number, Instance.id)).all()
    projection = [r for r in rows if (r.modality or "").upper() in PROJECTION_MODALITIES]
    return [db.store_path(r.file_path) for r in (projection or rows)]


def study_images_from_db(db: Database, study_uid: str) -> list[StudyImage]:
    """The images the engine reads for a study in the database (batch pre-draft from the worklist)."""
    return load_study_images(study_image_paths(db, study_uid))
