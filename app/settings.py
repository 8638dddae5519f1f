"""User settings as a JSON file in the config dir, with environment overrides.

Kept free of Qt so every part (database, PACS, engine choice) reads it in tests without a window.
Unknown keys are preserved, so a newer version's settings survive an older build.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from app.paths import config_dir

DEFAULTS: dict[str, Any] = {
    "db_url": "",  # empty: SQLite in the data dir; RADSTATION_DB_URL overrides
    "engine": "diffusion",  # registered engine backend name
    "engine_device": "auto",  # auto | cpu | cuda | cuda:N
    "auto_draft_on_open": False,
    "pacs_nodes": [],
    "pacs_cget_transport": "auto",  # auto | pynetdicom | dcmtk (app.pacs.getscu)
    "storage_scp": {"enabled": False, "ae_title": "RADSTATION", "port": 11112, "accepted_calling_aes": []},
    "anonymise_overlays": False,
}


class SettingsError(ValueError):
    """The settings file exists but cannot be read as settings."""


class Settings:
    """Load, read, change and save settings; `save` writes atomically so a crash never truncates it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or (config_dir() / "settings.json")
        self._values: dict[str, Any] = {}
        self.reload()

    @classmethod
    def load_or_defaults(cls, path: Path | None = None) -> tuple[Settings, str]:
        """Settings from the file, or the defaults plus the reason when the file is unreadable.

        The app keeps running on defaults rather than refusing to start; it does not overwrite the bad
        file until the user saves settings, so nothing in it is lost before they decide.
        """
        try:
            return cls(path), ""
        except SettingsError as exc:
            fallback = cls.__new__(cls)
            fallback.path = path or (config_dir() / "settings.json")
            fallback._values = json.loads(json.dumps(DEFAULTS))
            return fallback, str(exc)

    def reload(self) -> None:
        self._values = json.loads(json.dumps(DEFAULTS))
        if self.path.exists():
            try:
                stored = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise SettingsError(f"cannot read settings file {self.path}: {exc}") from exc
            if not isinstance(stored, dict):
                raise SettingsError(f"settings file {self.path} does not hold a JSON object")
            self._values.update(stored)

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, DEFAULTS.get(key, default))

    def set(self, key: str, value: Any) -> None:
        json.dumps(value)  # refuse values that could not be saved
        self._values[key] = value

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".settings-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self._values, fh, indent=2, sort_keys=True)
        os.replace(tmp, self.path)

    @property
    def db_url(self) -> str:
        """RADSTATION_DB_URL wins over the setting; empty means the default SQLite file."""
        return os.environ.get("RADSTATION_DB_URL") or self.get("db_url") or ""


_in_use: Settings | None = None


def use_settings(settings: Settings | None) -> None:
    """Make `settings` the app's settings for code that is not handed a Settings object (the audit key's
    place, signing roles, trust roots, the PDF fallback font ...). The main window sets the ones it was given,
    so they reach those modules instead of each re-reading settings.json; None: back to the file."""
    global _in_use
    _in_use = settings


def settings_in_use() -> Settings | None:
    """The settings object set by `use_settings` (the main window's), or None outside the app."""
    return _in_use


def current_settings() -> Settings:
    """The settings in use (see `use_settings`), else the settings file as it is now."""
    return _in_use if _in_use is not None else Settings()
