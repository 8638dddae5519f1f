"""Alembic migration scripts for the study database (revisions live in versions/)."""
