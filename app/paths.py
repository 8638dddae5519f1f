"""Where RadStation keeps its files. `RADSTATION_HOME` moves everything (tests use a temp dir).

Data and settings folders hold patient data and credentials references, so they are created readable
by their owner only (0700), and an existing folder that other users can read is tightened.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "RadStation"


def private_dir(path: Path, *, tighten: bool = True) -> Path:
    """Create `path` and each missing parent as an owner-only folder (0700 whatever the umask: `mkdir`'s mode
    is masked by it). With `tighten` an existing `path` that others can read is narrowed to 0700 (RadStation's
    own folders); without it an existing folder keeps its rights (a folder the user picked for an export is
    theirs). The one helper for both: exports (app.export_files) and the data/config/store folders."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another thread or process: handled below like any existing folder
        os.chmod(folder, 0o700)
    if tighten and path.stat().st_mode & 0o077:
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
