"""audit keys: a keyed checkpoint (HMAC-SHA256) on every audit entry and on the audit head; the audit
repository forwarding cursor

Revision ID: 0003_audit_keys
Revises: 0002_reports
The key lives outside the database (see app/reports/audit_key.py), so a rewritten and re-hashed chain no
longer verifies. Entries written before this revision stay covered by the hash chain that the first keyed
entry extends.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_audit_keys"
down_revision = "0002_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (no table copy), so SQLite keeps the append-only triggers of 0002
    op.add_column("audit_entry", sa.Column("mac", sa.String(length=64), nullable=False, server_default=""))
    op.add_column("audit_head", sa.Column("mac", sa.String(length=64), nullable=False, server_default=""))
    op.create_table("audit_forward",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("forwarded_seq", sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_forward")))


def downgrade() -> None:
    op.drop_table("audit_forward")
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:  # the table copy below would lose them; put them back after
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("mac")
    with op.batch_alter_table("audit_entry") as batch:
        batch.drop_column("mac")
    if sqlite:
        for what in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_entry_no_{what.lower()} BEFORE {what} ON audit_entry "
                       "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END")
