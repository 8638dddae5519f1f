"""What the AI parts store per study: report drafts and question/answer exchanges, with provenance
(engine, weights hash, seed) so any draft can be traced to the model that wrote it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow


class AiDraft(Base):
    __tablename__ = "ai_draft"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_db_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    engine: Mapped[str] = mapped_column(String(64))
    weights_hash: Mapped[str] = mapped_column(String(128), default="")
    seed: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    findings: Mapped[str] = mapped_column(Text, default="")
    impression: Mapped[str] = mapped_column(Text, default="")
    token_uncertainty: Mapped[Any | None] = mapped_column(JSON)
    images_used: Mapped[list[str]] = mapped_column(JSON, default=list)  # SOP Instance UIDs


class QaMessage(Base):
    __tablename__ = "qa_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_db_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text, default="")
    confidence: Mapped[float | None] = mapped_column(Float)
    engine: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
