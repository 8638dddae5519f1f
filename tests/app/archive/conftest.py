"""Two workstations (two image stores) on one shared database: the archive tests' setting."""

from __future__ import annotations

import pytest

from app.db.database import Database
from tests.support.postgres_fixture import database_url


@pytest.fixture
def two_workstations(tmp_path, monkeypatch, db_backend, request):
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    url = database_url(request, db_backend) or f"sqlite:///{tmp_path / 'department.db'}"  # the shared database
    a = Database.open(url, store_dir=tmp_path / "A" / "store")
    b = Database.open(url, store_dir=tmp_path / "B" / "store")
    yield a, b
    a.dispose()
    b.dispose()
