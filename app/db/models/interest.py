"""Images a reader flagged "Of Interest" while reading, per study (sent as a KOS with the signed report).

Keyed by UIDs, not foreign keys, like measurements: a flag must survive a re-import of its image.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow


class InterestImage(Base):
    __tablename__ = "interest_image"
    __table_args__ = (UniqueConstraint("study_uid", "sop_instance_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    flagged_at: Mapped[datetime] = mapped_column(default=utcnow)
