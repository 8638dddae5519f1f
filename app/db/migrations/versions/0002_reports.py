"""reports: users, report versions, signatures, audit chain, outbox

Revision ID: 0002_reports
Revises: 0001_initial
Written by hand to mirror app/reports/models.py. On SQLite, triggers also make the audit log append-only
and signed (final) report versions read-only at the database level, under the service's own checks.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_reports"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

SQLITE_TRIGGERS = (
    """CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
    """CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_entry
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
    """CREATE TRIGGER report_version_final_immutable BEFORE UPDATE ON report_version
       WHEN OLD.status = 'final'
       BEGIN SELECT RAISE(ABORT, 'signed report version is immutable'); END""",
    """CREATE TRIGGER report_version_final_undeletable BEFORE DELETE ON report_version
       WHEN OLD.status = 'final'
       BEGIN SELECT RAISE(ABORT, 'signed report version is immutable'); END""",
    """CREATE TRIGGER report_signature_immutable BEFORE UPDATE ON report_signature
       BEGIN SELECT RAISE(ABORT, 'report signatures are immutable'); END""",
)


def upgrade() -> None:
    op.create_table('app_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cert_der', sa.LargeBinary(), nullable=True),
    sa.Column('cert_sha256', sa.String(length=64), nullable=False),
    sa.Column('cert_history', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_user')),
    sa.UniqueConstraint('username', name=op.f('uq_app_user_username'))
    )
    op.create_table('audit_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('at', sa.String(length=40), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('object_type', sa.String(length=32), nullable=False),
    sa.Column('object_id', sa.String(length=128), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entry')),
    sa.UniqueConstraint('seq', name=op.f('uq_audit_entry_seq'))
    )
    op.create_index(op.f('ix_audit_entry_action'), 'audit_entry', ['action'], unique=False)
    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    op.create_table('report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('exam_type', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['app_user.id'], name=op.f('fk_report_created_by_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report'))
    )
    op.create_index(op.f('ix_report_study_uid'), 'report', ['study_uid'], unique=False)
    op.create_table('report_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('version_no', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('sections', sa.JSON(), nullable=False),
    sa.Column('ai_draft', sa.JSON(), nullable=True),
    sa.Column('ai_generated', sa.Boolean(), nullable=False),
    sa.Column('human_edited', sa.Boolean(), nullable=False),
    sa.Column('ai_accepted', sa.Boolean(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('signed_at', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['app_user.id'], name=op.f('fk_report_version_author_id_app_user')),
    sa.ForeignKeyConstraint(['report_id'], ['report.id'], name=op.f('fk_report_version_report_id_report'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['supersedes_id'], ['report_version.id'], name=op.f('fk_report_version_supersedes_id_report_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_version')),
    sa.UniqueConstraint('report_id', 'version_no', name='uq_report_version_report_no')
    )
    op.create_index(op.f('ix_report_version_report_id'), 'report_version', ['report_id'], unique=False)
    op.create_table('outbox_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('document', sa.String(length=16), nullable=False),
    sa.Column('destination', sa.String(length=64), nullable=False),
    sa.Column('protocol', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['version_id'], ['report_version.id'], name=op.f('fk_outbox_item_version_id_report_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_item'))
    )
    op.create_index(op.f('ix_outbox_item_state'), 'outbox_item', ['state'], unique=False)
    op.create_index(op.f('ix_outbox_item_version_id'), 'outbox_item', ['version_id'], unique=False)
    op.create_table('report_signature',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('signer_id', sa.Integer(), nullable=False),
    sa.Column('signed_at', sa.String(length=40), nullable=False),
    sa.Column('canonical', sa.LargeBinary(), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.Column('algorithm', sa.String(length=40), nullable=False),
    sa.Column('certificate_der', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['signer_id'], ['app_user.id'], name=op.f('fk_report_signature_signer_id_app_user')),
    sa.ForeignKeyConstraint(['version_id'], ['report_version.id'], name=op.f('fk_report_signature_version_id_report_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_signature')),
    sa.UniqueConstraint('version_id', name=op.f('uq_report_signature_version_id'))
    )
    op.create_table('report_artifact',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['report_version.id'], name=op.f('fk_report_artifact_version_id_report_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_artifact')),
    sa.UniqueConstraint('version_id', 'kind', name='uq_report_artifact_version_kind')
    )
    op.create_index(op.f('ix_report_artifact_version_id'), 'report_artifact', ['version_id'], unique=False)
    op.execute("INSERT INTO audit_head (id, count, last_hash) VALUES (1, 0, '" + "0" * 64 + "')")
    if op.get_bind().dialect.name == "sqlite":
        for sql in SQLITE_TRIGGERS:
            op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("audit_entry_no_update", "audit_entry_no_delete", "report_version_final_immutable",
                     "report_version_final_undeletable", "report_signature_immutable"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index(op.f('ix_report_artifact_version_id'), table_name='report_artifact')
    op.drop_table('report_artifact')
    op.drop_table('report_signature')
    op.drop_index(op.f('ix_outbox_item_version_id'), table_name='outbox_item')
    op.drop_index(op.f('ix_outbox_item_state'), table_name='outbox_item')
    op.drop_table('outbox_item')
    op.drop_index(op.f('ix_report_version_report_id'), table_name='report_version')
    op.drop_table('report_version')
    op.drop_index(op.f('ix_report_study_uid'), table_name='report')
    op.drop_table('report')
    op.drop_table('audit_head')
    op.drop_index(op.f('ix_audit_entry_action'), table_name='audit_entry')
    op.drop_table('audit_entry')
    op.drop_table('app_user')
