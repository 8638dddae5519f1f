"""database rules on PostgreSQL too: append-only audit log, immutable signed versions and signatures

Revision ID: 0004_db_rules
Revises: 0003_audit_keys
Written by hand. 0002 enforced the rules with SQLite triggers only, so on PostgreSQL a direct UPDATE of a
signed report succeeded and was caught only later by `verify`. Here the same rules become PL/pgSQL
triggers (plus TRUNCATE, which SQLite does not have), and on both databases two gaps are closed: a
report signature can no longer be deleted, and the audit head can neither be deleted nor moved back
(which would hide entries cut off the end of the chain).
"""

from __future__ import annotations

from alembic import op

revision = "0004_db_rules"
down_revision = "0003_audit_keys"
branch_labels = None
depends_on = None

PG_FUNCTIONS = (
    """CREATE OR REPLACE FUNCTION radstation_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'audit log is append-only' USING ERRCODE = 'integrity_constraint_violation'; END $$""",
    """CREATE OR REPLACE FUNCTION radstation_signed_version_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'signed report version % is immutable', OLD.id
             USING ERRCODE = 'integrity_constraint_violation'; END $$""",
    """CREATE OR REPLACE FUNCTION radstation_signature_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'report signatures are immutable' USING ERRCODE = 'integrity_constraint_violation';
       END $$""",
    """CREATE OR REPLACE FUNCTION radstation_signed_rows_untruncatable() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'table % holds signed reports or the audit log and cannot be truncated',
             TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation'; END $$""",
    """CREATE OR REPLACE FUNCTION radstation_audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP = 'DELETE' THEN
           RAISE EXCEPTION 'the audit head cannot be deleted' USING ERRCODE = 'integrity_constraint_violation';
         END IF;
         IF NEW.count < OLD.count OR NEW.id <> OLD.id THEN
           RAISE EXCEPTION 'the audit head only moves forward' USING ERRCODE = 'integrity_constraint_violation';
         END IF;
         RETURN NEW;
       END $$""",
)

# (trigger name, table, definition after "CREATE TRIGGER name"): the names of 0002's SQLite triggers, so
# tooling and tests refer to one rule by one name on both databases.
PG_TRIGGERS = (
    ("audit_entry_no_update", "audit_entry",
     "BEFORE UPDATE ON audit_entry FOR EACH ROW EXECUTE FUNCTION radstation_audit_append_only()"),
    ("audit_entry_no_delete", "audit_entry",
     "BEFORE DELETE ON audit_entry FOR EACH ROW EXECUTE FUNCTION radstation_audit_append_only()"),
    ("audit_entry_no_truncate", "audit_entry",
     "BEFORE TRUNCATE ON audit_entry FOR EACH STATEMENT EXECUTE FUNCTION radstation_signed_rows_untruncatable()"),
    ("report_version_final_immutable", "report_version",
     "BEFORE UPDATE ON report_version FOR EACH ROW WHEN (OLD.status = 'final') "
     "EXECUTE FUNCTION radstation_signed_version_immutable()"),
    ("report_version_final_undeletable", "report_version",
     "BEFORE DELETE ON report_version FOR EACH ROW WHEN (OLD.status = 'final') "
     "EXECUTE FUNCTION radstation_signed_version_immutable()"),
    ("report_version_no_truncate", "report_version",
     "BEFORE TRUNCATE ON report_version FOR EACH STATEMENT EXECUTE FUNCTION radstation_signed_rows_untruncatable()"),
    ("report_signature_immutable", "report_signature",
     "BEFORE UPDATE ON report_signature FOR EACH ROW EXECUTE FUNCTION radstation_signature_immutable()"),
    ("report_signature_undeletable", "report_signature",
     "BEFORE DELETE ON report_signature FOR EACH ROW EXECUTE FUNCTION radstation_signature_immutable()"),
    ("report_signature_no_truncate", "report_signature",
     "BEFORE TRUNCATE ON report_signature FOR EACH STATEMENT "
     "EXECUTE FUNCTION radstation_signed_rows_untruncatable()"),
    ("audit_head_forward_only", "audit_head",
     "BEFORE UPDATE OR DELETE ON audit_head FOR EACH ROW EXECUTE FUNCTION radstation_audit_head_forward_only()"),
    ("audit_head_no_truncate", "audit_head",
     "BEFORE TRUNCATE ON audit_head FOR EACH STATEMENT EXECUTE FUNCTION radstation_signed_rows_untruncatable()"),
)

# What SQLite lacked after 0002 (its update/delete triggers for the audit log and final versions stay there).
SQLITE_TRIGGERS = (
    ("report_signature_undeletable",
     """CREATE TRIGGER report_signature_undeletable BEFORE DELETE ON report_signature
        BEGIN SELECT RAISE(ABORT, 'report signatures are immutable'); END"""),
    ("audit_head_no_delete",
     """CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
        BEGIN SELECT RAISE(ABORT, 'the audit head cannot be deleted'); END"""),
    ("audit_head_forward_only",
     """CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head
        WHEN NEW.count < OLD.count OR NEW.id <> OLD.id
        BEGIN SELECT RAISE(ABORT, 'the audit head only moves forward'); END"""),
)

PG_FUNCTION_NAMES = ("radstation_audit_append_only", "radstation_signed_version_immutable",
                     "radstation_signature_immutable", "radstation_signed_rows_untruncatable",
                     "radstation_audit_head_forward_only")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for sql in PG_FUNCTIONS:
            op.execute(sql)
        for name, _table, definition in PG_TRIGGERS:
            op.execute(f"CREATE TRIGGER {name} {definition}")
    elif dialect == "sqlite":
        for _name, sql in SQLITE_TRIGGERS:
            op.execute(sql)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for name, table, _definition in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for fn in PG_FUNCTION_NAMES:
            op.execute(f"DROP FUNCTION IF EXISTS {fn}()")
    elif dialect == "sqlite":
        for name, _sql in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
