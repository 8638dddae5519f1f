"""Tests under app/ that ask for `home` or `db` get their own RadStation home (database + store) in a temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db.database import Database


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    return tmp_path / "home"


@pytest.fixture
def db(home: Path) -> Iterator[Database]:
    database = Database.open()
    yield database
    database.dispose()
