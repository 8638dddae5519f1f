"""import integrity: incomplete instances, conflicting copies, study flags, import batch owner

Revision ID: 0006_import_integrity
Revises: 0005_report_claims
Written by hand to mirror app/db/models/integrity.py and the new Instance/ImportBatch columns.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_import_integrity"
down_revision = "0005_report_claims"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("incomplete", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("import_batch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=300), nullable=False, server_default=""))
    op.create_table(
        "instance_conflict",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_db_id", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("file_path", sa.Text(), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["instance_db_id"], ["instance.id"], ondelete="CASCADE",
                                name=op.f("fk_instance_conflict_instance_db_id_instance")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instance_conflict")),
    )
    with op.batch_alter_table("instance_conflict", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instance_conflict_instance_db_id"), ["instance_db_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_instance_conflict_sop_instance_uid"), ["sop_instance_uid"], unique=False)
    op.create_table(
        "study_flag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_db_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["study_db_id"], ["study.id"], ondelete="CASCADE",
                                name=op.f("fk_study_flag_study_db_id_study")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_flag")),
        sa.UniqueConstraint("study_db_id", "kind", name="uq_study_flag_study_kind"),
    )
    with op.batch_alter_table("study_flag", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_study_flag_study_db_id"), ["study_db_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("study_flag", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_study_flag_study_db_id"))
    op.drop_table("study_flag")
    with op.batch_alter_table("instance_conflict", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instance_conflict_sop_instance_uid"))
        batch_op.drop_index(batch_op.f("ix_instance_conflict_instance_db_id"))
    op.drop_table("instance_conflict")
    with op.batch_alter_table("import_batch", schema=None) as batch_op:
        batch_op.drop_column("owner")
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_column("incomplete")
