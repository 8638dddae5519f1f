"""Which similar-case index a workstation uses: FAISS in its folder by default, the department's pgvector index
when the study database is PostgreSQL (or a setting says so), and clear errors for impossible settings."""

from __future__ import annotations

import pytest

from app.ai.engine_settings import engine_from_settings
from app.ai.similar_store import cases_url
from app.settings import Settings

PG = "postgresql://rad:secret@db-host:5432/radstation"


def test_backend_follows_the_study_database_unless_a_setting_says_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    s = Settings(tmp_path / "settings.json")
    assert cases_url(s) == ""  # SQLite: the embedded FAISS folder
    s.set("db_url", PG)
    assert cases_url(s) == PG
    name, config = engine_from_settings(s)
    assert name == "diffusion" and config["cases_url"] == PG and "cases_dir" in config
    s.set("similar_backend", "faiss")
    assert cases_url(s) == "" and "cases_url" not in engine_from_settings(s)[1]
    s.set("similar_backend", "pgvector")
    s.set("db_url", "")
    with pytest.raises(ValueError, match="no PostgreSQL database"):
        cases_url(s)
    s.set("similar_db_url", "postgresql+psycopg://rad@other/vectors")  # the index in another database
    assert cases_url(s) == "postgresql+psycopg://rad@other/vectors"
    monkeypatch.setenv("RADSTATION_DB_URL", PG)
    s.set("similar_db_url", "")
    s.set("similar_backend", "Auto")
    assert cases_url(s) == PG
    s.set("similar_backend", "milvus")
    with pytest.raises(ValueError, match="choose one of auto, faiss, pgvector"):
        cases_url(s)
