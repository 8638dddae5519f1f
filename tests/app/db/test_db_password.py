"""The database server's password stays out of settings.json: a real PostgreSQL that demands a password
(scram-sha-256 for this account), the password moved out of an old settings file into the secret store,
stored from the command line without ever being typed on it, and refused connections without it."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text

from app.cli import main
from app.db.database import Database, DatabaseError

SECRET = "db-Secret-" + uuid.uuid4().hex[:8]


@pytest.fixture
def account(postgres, home, monkeypatch):  # type: ignore[no-untyped-def]
    """A role that must give its password (pg_hba line for it alone) and a database it owns."""
    monkeypatch.setenv("RADSTATION_SECRET_BACKEND", "file")
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(home / "no-pgpass"))  # libpq must not find one elsewhere
    monkeypatch.delenv("PGPASSWORD", raising=False)
    role = f"rs_{uuid.uuid4().hex[:10]}"
    postgres.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{SECRET}'")
    postgres.execute(f"CREATE DATABASE {role} OWNER {role}")
    hba = postgres.workdir / "data" / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + original)
    postgres.execute("SELECT pg_reload_conf()")
    try:
        yield role, f"postgresql+psycopg://{role}@127.0.0.1:{postgres.port}/{role}"
    finally:
        hba.write_text(original)
        postgres.execute("SELECT pg_reload_conf()")


def _open(url: str | None = None) -> Database:
    db = Database.open(url)
    with db.session() as s:
        assert s.execute(text("SELECT current_user")).scalar()
    return db


def test_server_refuses_the_account_without_its_password(account) -> None:  # type: ignore[no-untyped-def]
    _role, url = account
    with pytest.raises(DatabaseError, match="password"):
        Database.open(url)


def test_password_in_settings_is_moved_to_the_secret_store(account, home) -> None:  # type: ignore[no-untyped-def]
    role, url = account
    settings_file = home / "config" / "settings.json"
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(json.dumps({"db_url": url.replace(f"{role}@", f"{role}:{SECRET}@")}))
    _open().dispose()  # from the settings: opens with the password, then keeps it elsewhere
    kept = json.loads(settings_file.read_text())["db_url"]
    assert SECRET not in settings_file.read_text() and kept.startswith(f"postgresql+psycopg://{role}@")
    assert settings_file.stat().st_mode & 0o777 == 0o600
    for f in home.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f  # not in the clear anywhere (secrets.enc included)
    _open().dispose()  # the URL without password now works from the store
    _open(url).dispose()  # and so does the same account given explicitly


def test_cli_stores_the_password_asked_for_never_from_the_command_line(account, monkeypatch,  # type: ignore[no-untyped-def]
                                                                       capsys) -> None:
    role, url = account
    assert main(["secrets", "set-db-password", url.replace(f"{role}@", f"{role}:{SECRET}@")]) == 2
    assert "without its password" in capsys.readouterr().err
    assert main(["secrets", "set-db-password", "postgresql://db-host/radstation"]) == 2
    assert "names no user" in capsys.readouterr().err
    monkeypatch.setattr("getpass.getpass", lambda prompt: "wrong-password")
    assert main(["secrets", "set-db-password", url]) == 0
    with pytest.raises(DatabaseError, match="password"):
        Database.open(url)
    monkeypatch.setattr("getpass.getpass", lambda prompt: SECRET)
    assert main(["secrets", "set-db-password", url]) == 0
    assert "encrypted file" in capsys.readouterr().out
    _open(url).dispose()
