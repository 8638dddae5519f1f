"""Where RadStation keeps its files. `RADSTATION_HOME` moves everything (tests use a temp dir)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "RadStation"


def data_dir() -> Path:
    """User data: database, imported-file cache, keys, logs."""
    home = os.environ.get("RADSTATION_HOME")
    path = Path(home) / "data" if home else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """User settings (settings.json)."""
    home = os.environ.get("RADSTATION_HOME")
    path = Path(home) / "config" if home else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path
