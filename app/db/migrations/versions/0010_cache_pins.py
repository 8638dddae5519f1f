"""cache_pin: studies a workstation keeps in its local image cache whatever the size limit

Revision ID: 0010_cache_pins
Revises: 0009_amend_reason
Written by hand to mirror app/db/models/cache.py CachePin.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_cache_pins"
down_revision = "0009_amend_reason"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cache_pin",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workstation", sa.String(length=200), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("pinned_by", sa.String(length=200), nullable=False),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cache_pin")),
        sa.UniqueConstraint("workstation", "study_uid", name=op.f("uq_cache_pin_workstation")),
    )
    op.create_index(op.f("ix_cache_pin_study_uid"), "cache_pin", ["study_uid"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_cache_pin_study_uid"), table_name="cache_pin")
    op.drop_table("cache_pin")
