"""report_version.amend_reason: why a signed report was amended (required for amendments, signed with them)

Revision ID: 0009_amend_reason
Revises: 0008_similar_cases
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_amend_reason"
down_revision = "0008_similar_cases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("report_version", sa.Column("amend_reason", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("report_version", "amend_reason")
