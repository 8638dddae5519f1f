"""Where RadStation keeps its files. `RADSTATION_HOME` moves everything (tests use a temp dir).

Data and settings folders hold patient data and credentials references, so they are created readable
by their owner only (0700), and an existing folder that other users can read is tightened.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "RadStation"


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) as an owner-only folder; tighten it if it exists."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def data_dir() -> Path:
    """User data: database, imported-file cache, keys, logs."""
    home = os.environ.get("RADSTATION_HOME")
    path = Path(home) / "data" if home else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return private_dir(path)


def config_dir() -> Path:
    """User settings (settings.json)."""
    home = os.environ.get("RADSTATION_HOME")
    path = Path(home) / "config" if home else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
    return private_dir(path)
