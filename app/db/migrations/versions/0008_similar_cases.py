"""similar cases: the department's similar-case index in PostgreSQL (pgvector)

Revision ID: 0008_similar_cases
Revises: 0007_study_counts
Written by hand. On PostgreSQL the similar-case index lives in the study database, so every workstation
searches and extends one index (engines/similar/pg_index.py holds the statements and the per-embedding HNSW
indexes). The `vector` extension is created when this user may; when the server has no pgvector or the user
may not create extensions, the rest of the schema still migrates (nothing else depends on these tables) and
the similar-case panel says what the administrator has to run (CREATE EXTENSION vector); the tables are then
created on first use. SQLite keeps its embedded FAISS index (a folder), so nothing happens there.
"""

from __future__ import annotations

import logging

from alembic import op

revision = "0008_similar_cases"
down_revision = "0007_study_counts"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from engines.similar.pg_index import PgVectorMissing, ensure_schema

    try:
        ensure_schema(bind)
    except PgVectorMissing as exc:
        log.warning("similar-case index not created: %s", exc)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("DROP TABLE IF EXISTS similar_case")
    op.execute("DROP TABLE IF EXISTS similar_index")
