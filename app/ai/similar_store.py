"""Where the similar-case indexes are: the site's signed studies (written as reports are signed) and, for
development, an index of the curated training data (`python -m engines.similar.build`)."""

from __future__ import annotations

from pathlib import Path

from app.paths import data_dir
from app.settings import Settings

# Settings keys:
#   similar_cases_dir: the site's index folder (default: <data dir>/similar_cases)
#   similar_dev_index: a development index folder of curated training data ("" = none)


def cases_dir(settings: Settings) -> Path:
    value = str(settings.get("similar_cases_dir", "") or "")
    return Path(value).expanduser() if value else data_dir() / "similar_cases"


def dev_index_dir(settings: Settings) -> Path | None:
    value = str(settings.get("similar_dev_index", "") or "")
    return Path(value).expanduser() if value else None
