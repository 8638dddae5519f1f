"""Drafts and question/answer history in the study database, with the provenance to trace each one."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.ai.study_images import PROJECTION_MODALITIES, StudyImage, load_study_images
from app.db.database import Database
from app.db.models import AiDraft, Instance, QaMessage, Series, Study
from engines.backends.results import TextOutput


def _study_id(session: Session, study_uid: str) -> int | None:
    return session.scalar(select(Study.id).where(Study.study_uid == study_uid))


def save_draft(db: Database, study_uid: str, result: TextOutput, images_used: list[str]) -> int | None:
    """Store a drafted report; None when the study is not in the database (e.g. opened from a folder)."""
    prov = result.provenance or {}
    tokens = {"tokens": [dataclasses.asdict(t) for t in result.tokens], "confidence": result.confidence,
              "steps": result.steps, "model": prov.get("model", ""), "device": prov.get("device", "")}

    def write(s: Session) -> int | None:
        sid = _study_id(s, study_uid)
        if sid is None:
            return None
        row = AiDraft(study_db_id=sid, engine=str(prov.get("engine", "")), weights_hash=str(prov.get("weights_hash", "")),
                      seed=int(result.seed), findings=str(result.findings), impression=str(result.impression),
                      token_uncertainty=tokens, images_used=list(images_used))
        s.add(row)
        s.flush()
        return int(row.id)

    # a write transaction from its first read (several pre-draft threads and an import may be writing at once)
    return db.run_write(write)


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
    def write(s: Session) -> int | None:
        sid = _study_id(s, study_uid)
        if sid is None:
            return None
        row = QaMessage(study_db_id=sid, question=question, answer=answer, confidence=confidence, engine=engine)
        s.add(row)
        s.flush()
        return int(row.id)

    return db.run_write(write)


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


def stored_draft_for_report(row: dict[str, Any]) -> dict[str, Any]:
    """A stored draft (a `drafts_for` row, e.g. from a batch pre-draft) in the form the report editor loads
    (the same keys DraftService.draftReady carries), with its provenance: engine, weights, seed, when."""
    tu = row.get("token_uncertainty") or {}
    tokens = [{**t, "uncertainty": round(1.0 - float(t.get("confidence", 0.0)), 4)} for t in tu.get("tokens", [])]
    created = row.get("created_at")
    when = created.isoformat(timespec="seconds") if hasattr(created, "isoformat") else str(created or "")
    prov = {"engine": row.get("engine", ""), "weights_hash": row.get("weights_hash", ""), "seed": row.get("seed"),
            "steps": tu.get("steps"), "model": tu.get("model", ""), "device": tu.get("device", ""),
            "draft_id": row.get("id"), "created": when, "stored_draft": True}
    n = len(row.get("images_used") or [])
    return {"findings": row.get("findings", ""), "impression": row.get("impression", ""),
            "text": "\n".join(filter(None, (row.get("findings", ""), row.get("impression", "")))),
            "token_uncertainty": tokens, "confidence": tu.get("confidence"), "provenance": prov,
            "images_used_uids": list(row.get("images_used") or []),
            "images_note": f"Pre-drafted by {row.get('engine') or 'the engine'} at {when} from {n} image(s)."}
