"""Fixtures for report tests: a fresh migrated database (SQLite, and PostgreSQL too) with a study, users with keys."""

from __future__ import annotations

import datetime as dt

import pytest

from app.db.database import Database
from app.reports.service import ReportService
from app.reports.users import UserService
from tests.support.postgres_fixture import database_url
from tests.support.reports_testing import FAST_HASHER, ReportEnv, add_study, make_user


@pytest.fixture
def env(tmp_path, monkeypatch, db_backend, request) -> ReportEnv:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    url = database_url(request, db_backend) or f"sqlite:///{tmp_path / 'rs.db'}"
    db = Database.open(url, store_dir=tmp_path / "store")
    users = UserService(db, hasher=FAST_HASHER, max_failures=3, lockout=dt.timedelta(minutes=10))
    add_study(db)
    yield ReportEnv(db, users, ReportService(db, users), tmp_path / "home")
    db.dispose()


@pytest.fixture
def radiologist(env):
    return make_user(env, "rad", "radiologist")


@pytest.fixture
def resident(env):
    return make_user(env, "res", "resident", with_key=False)
