"""What the importer could not take at face value: second copies of an instance and flagged studies.

A SOP Instance UID that arrives again with different content is kept beside the first copy (never
dropped, never overwriting it) as an `InstanceConflict`; the study gets a `StudyFlag` so the worklist
shows it. Flags also mark studies holding truncated objects, imports cut off by a crash and partial
retrievals, so an incomplete study never looks like a normal one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow

FLAG_KINDS: tuple[str, ...] = ("incomplete_objects", "conflicting_copies", "import_interrupted", "retrieve_partial")


class InstanceConflict(Base):
    """A later copy of an instance whose content differs from the stored one (same SOP Instance UID)."""

    __tablename__ = "instance_conflict"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_db_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    study_uid: Mapped[str] = mapped_column(String(64), default="")  # as the later copy says
    series_uid: Mapped[str] = mapped_column(String(64), default="")
    file_path: Mapped[str] = mapped_column(Text)  # relative to the store root, beside the first copy
    file_size: Mapped[int] = mapped_column(BigInteger, default=0)
    file_sha256: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(Text, default="")  # file path or "C-STORE from AE@host"
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class StudyFlag(Base):
    """One reason a study needs attention; at most one row per kind per study."""

    __tablename__ = "study_flag"
    __table_args__ = (UniqueConstraint("study_db_id", "kind", name="uq_study_flag_study_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_db_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
