"""Where the similar-case indexes are: the site's signed studies (written as reports are signed) and, for
development, an index of the curated training data (`python -m lab.build.case_index`).

The site's index is an embedded FAISS folder on a single workstation and, when the study database is
PostgreSQL (a department), a pgvector index in that database, so every workstation searches and extends one
index (engines/similar/pg_index.py, docs/similar_cases_postgres.md)."""

from __future__ import annotations

from pathlib import Path

from app.paths import data_dir
from app.settings import Settings

# Settings keys:
#   similar_cases_dir: the site's index folder (default: <data dir>/similar_cases)
#   similar_dev_index: a development index folder of curated training data ("" = none)
#   similar_backend:   "auto" (pgvector when the study database is PostgreSQL, else FAISS), "faiss", "pgvector"
#   similar_db_url:    the PostgreSQL database of the pgvector index ("" = the study database)
BACKENDS = ("auto", "faiss", "pgvector")


def cases_dir(settings: Settings) -> Path:
    value = str(settings.get("similar_cases_dir", "") or "")
    return Path(value).expanduser() if value else data_dir() / "similar_cases"


def dev_index_dir(settings: Settings) -> Path | None:
    value = str(settings.get("similar_dev_index", "") or "")
    return Path(value).expanduser() if value else None


def _is_postgres(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def cases_url(settings: Settings) -> str:
    """The PostgreSQL URL that holds the site's index, or "" for the embedded FAISS folder (`cases_dir`).
    Raises ValueError for an unknown `similar_backend` or "pgvector" without a PostgreSQL database."""
    choice = str(settings.get("similar_backend", "auto") or "auto").strip().lower()
    if choice not in BACKENDS:
        raise ValueError(f"the 'similar_backend' setting is {choice!r}; choose one of {', '.join(BACKENDS)}")
    if choice == "faiss":
        return ""
    url = str(settings.get("similar_db_url", "") or "").strip() or settings.db_url
    if _is_postgres(url):
        return url
    if choice == "pgvector":
        raise ValueError("'similar_backend' is pgvector but no PostgreSQL database is configured: set "
                         "'similar_db_url' or the study database (RADSTATION_DB_URL) to a postgresql:// URL")
    return ""
