"""Studies a workstation keeps in its local image cache whatever its size limit (app.archive.cache).

One row per workstation and study: the database is shared by the department, and what one workstation
keeps on its own disk is its own choice. Kept in the database (not beside the images) so a pin survives a
restart, a wiped cache folder, and is visible to the site's support staff.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow


class CachePin(Base):
    """`study_uid` is never evicted from `workstation`'s local image cache."""

    __tablename__ = "cache_pin"
    __table_args__ = (UniqueConstraint("workstation", "study_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workstation: Mapped[str] = mapped_column(String(200))
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    pinned_by: Mapped[str] = mapped_column(String(200), default="")  # user name, or "" before log-in
    pinned_at: Mapped[datetime] = mapped_column(default=utcnow)
