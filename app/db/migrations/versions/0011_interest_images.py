"""interest_image: images flagged "Of Interest" while reading (sent as a KOS)

Revision ID: 0011_interest_images
Revises: 0010_cache_pins
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_interest_images"
down_revision = "0010_cache_pins"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "interest_image",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("series_uid", sa.String(64), nullable=False),
        sa.Column("sop_class_uid", sa.String(64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interest_image")),
        sa.UniqueConstraint("study_uid", "sop_instance_uid", name=op.f("uq_interest_image_study_uid")),
    )
    op.create_index(op.f("ix_interest_image_study_uid"), "interest_image", ["study_uid"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_interest_image_study_uid"), table_name="interest_image")
    op.drop_table("interest_image")
