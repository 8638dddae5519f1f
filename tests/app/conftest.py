"""Tests under app/ that ask for `home` or `db` get their own RadStation home (database + store) in a temp dir.

The database and report suites (tests/app/db, tests/app/reports) run every test that uses `db` or the
report `env` twice: on SQLite and on a fresh database of the real PostgreSQL server (`postgres` marker).
A test that is about SQLite itself says so with `@pytest.mark.sqlite_only`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db.database import Database
from tests.support.postgres_fixture import database_url

BOTH_DATABASES = ("tests/app/db/", "tests/app/reports/")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" not in metafunc.fixturenames or metafunc.definition.get_closest_marker("sqlite_only"):
        return
    path = Path(str(metafunc.definition.path)).as_posix()
    if any(f"/{part}" in path for part in BOTH_DATABASES):
        metafunc.parametrize("db_backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


@pytest.fixture
def db_backend() -> str:
    """Which database a test's `db` is on; parametrized to both for the database suites (see above)."""
    return "sqlite"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    return tmp_path / "home"


@pytest.fixture
def db(home: Path, db_backend: str, request: pytest.FixtureRequest) -> Iterator[Database]:
    database = Database.open(database_url(request, db_backend))
    yield database
    database.dispose()
