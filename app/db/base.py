"""The one declarative base every table in the study database hangs off.

Other parts (reports, PACS, audit) declare their own tables on this Base in their own modules and add
their own Alembic revisions, so a single `metadata` describes the whole database.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData
from sqlalchemy.orm import DeclarativeBase

# Deterministic constraint names: Alembic batch migrations on SQLite need names to alter constraints.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for all RadStation tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True)}


def utcnow() -> datetime:
    """Aware UTC now: stored timestamps are always UTC, shown in local time by the UI."""
    return datetime.now(UTC)
