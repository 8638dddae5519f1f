"""report claims: who is editing a report now, with an expiry

Revision ID: 0005_report_claims
Revises: 0004_db_rules
Written by hand to mirror app/reports/models.py ReportClaim.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_report_claims"
down_revision = "0004_db_rules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_claim",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("workstation", sa.String(length=200), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["report_id"], ["report.id"], name=op.f("fk_report_claim_report_id_report"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_report_claim_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_claim")),
        sa.UniqueConstraint("report_id", name=op.f("uq_report_claim_report_id")),
    )


def downgrade() -> None:
    op.drop_table("report_claim")
