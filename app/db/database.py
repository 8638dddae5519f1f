"""Opening the study database: engine, sessions, and migrations applied on every start.

SQLite (the default, a file in the data dir) runs in WAL mode so the worklist can read while an import
writes, with foreign keys ON; any other SQLAlchemy URL (PostgreSQL) comes from Settings / RADSTATION_DB_URL.
A plain `postgresql://` URL uses psycopg 3 (the `postgres` extra), not SQLAlchemy's psycopg2 default.

Writers keep their transactions short and take the write lock when they begin (`write_session`:
SQLite `BEGIN IMMEDIATE`), because a deferred transaction that reads first and writes later fails at
once with "database is locked" when another writer committed in between, whatever the busy timeout.
`run_write` retries a whole transaction while the database is busy, so a report autosave or a received
image is never lost to a moment of contention. The database file is created readable by its owner only.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db.migrate import upgrade_to_head
from app.db.password import (
    move_password_out_of_settings,
    warn_if_password_in_environment,
    with_stored_password,
)
from app.paths import data_dir, private_dir
from app.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long one BEGIN IMMEDIATE waits for the write lock before SQLite gives up (then `run_write` retries).
BUSY_TIMEOUT_MS = 5000
# `run_write` keeps retrying a busy database this long before it reports the database as busy.
WRITE_RETRY_SECONDS = 60.0


class DatabaseError(RuntimeError):
    """The database URL is unusable or the schema could not be brought up to date."""


class DatabaseBusyError(DatabaseError):
    """Other writers held the database for longer than the retry window; nothing was written."""


def default_url() -> str:
    return f"sqlite:///{(data_dir() / 'radstation.db').as_posix()}"


def _configured_url() -> str:
    """RADSTATION_DB_URL, else the setting (a password written into it is moved to the secret store)."""
    settings = Settings()
    if os.environ.get("RADSTATION_DB_URL"):
        warn_if_password_in_environment()
    else:
        move_password_out_of_settings(settings)
    return settings.db_url or default_url()


def normalise_url(url: str) -> URL:
    """Parse `url`; `postgresql://` and `postgres://` mean psycopg 3, the driver the extra installs."""
    try:
        parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises several types for a bad URL
        raise DatabaseError(f"not a database URL: {url!r} ({exc})") from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _check_driver(parsed: URL) -> None:
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError as exc:
        raise DatabaseError(f"unknown database kind in URL: {parsed.drivername} ({exc})") from exc
    except ImportError as exc:
        extra = " (pip install 'radstation[postgres]')" if parsed.get_backend_name() == "postgresql" else ""
        raise DatabaseError(f"the database driver for {parsed.drivername} is not installed{extra}: {exc}") from exc


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # Transactions are begun by `_sqlite_begin` below, not by the driver (which begins late and deferred).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # an import writing must not make the worklist fail
    cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a crash loses at most the last commit
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def is_busy_error(exc: BaseException) -> bool:
    """True for "try again" database errors: SQLite locked/busy, PostgreSQL serialization or deadlock."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = getattr(exc, "orig", None)
    code = str(getattr(orig, "pgcode", "") or getattr(orig, "sqlstate", "") or "")
    if code in ("40001", "40P01", "55P03"):
        return True
    text = str(orig or exc).lower()
    return isinstance(exc, OperationalError) and ("locked" in text or "busy" in text)


def _restrict_sqlite_file(path: Path) -> None:
    """Create the database file owner-only before SQLite does (its -wal/-shm files copy the mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if p.exists() and p.stat().st_mode & 0o077:
                os.chmod(p, 0o600)
        except OSError as exc:  # e.g. a file owned by another user: SQLite will say more if it matters
            log.warning("cannot restrict permissions of %s: %s", p, exc)


class Database:
    """One database: its engine, a session factory and the managed file store beside it."""

    def __init__(self, engine: Engine, store_dir: Path) -> None:
        self.engine = engine
        self.store_dir = store_dir
        self._sessions = sessionmaker(engine, expire_on_commit=False, info={"store_dir": str(store_dir)})
        self.is_sqlite = engine.url.get_backend_name() == "sqlite"

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @classmethod
    def open(cls, url: str | None = None, *, store_dir: Path | None = None, migrate: bool = True) -> Database:
        """Open `url` (default: Settings().db_url, then the SQLite file in the data dir) and migrate it."""
        url = url or _configured_url()
        parsed = normalise_url(url)
        _check_driver(parsed)
        parsed = with_stored_password(parsed)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            try:
                _restrict_sqlite_file(Path(parsed.database))
            except OSError as exc:
                raise DatabaseError(f"cannot create database file {parsed.database}: {exc.strerror or exc}") from exc
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed)
            event.listen(engine, "connect", _sqlite_connect)
            event.listen(engine, "begin", _sqlite_begin)
        else:  # a server shared by many workstations: connections dropped by it or a firewall are retried
            engine = create_engine(parsed, pool_pre_ping=True)
        store = store_dir or (data_dir() / "store")
        try:
            private_dir(store)
        except OSError as exc:
            engine.dispose()
            raise DatabaseError(f"cannot create the image store {store}: {exc.strerror or exc}") from exc
        db = cls(engine, store)
        if migrate:
            try:
                upgrade_to_head(engine)
            except Exception as exc:
                engine.dispose()
                raise DatabaseError(f"cannot bring database {db.url} up to date: {exc}") from exc
        return db

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """Like `session`, but the transaction holds the write lock from its start (SQLite: BEGIN
        IMMEDIATE), so a read-then-write never fails half-way; keep what runs inside it short."""
        session = self._sessions()
        try:
            if self.is_sqlite:
                session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def run_write(self, fn: Callable[[Session], T], *, retry_seconds: float | None = None) -> T:
        """Run `fn(session)` in a write transaction, again from the start while the database is busy.

        `fn` must do only database work (it may run several times). Raises DatabaseBusyError when
        other writers kept the database for `retry_seconds` (default WRITE_RETRY_SECONDS).
        """
        if retry_seconds is None:
            retry_seconds = WRITE_RETRY_SECONDS
        deadline = time.monotonic() + retry_seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.write_session() as session:
                    return fn(session)
            except DBAPIError as exc:
                if not is_busy_error(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise DatabaseBusyError(
                        f"the database stayed busy for {retry_seconds:.0f} s (another program is writing "
                        f"to it); nothing was lost, try again ({exc.orig})"
                    ) from exc
                log.info("database busy (attempt %d), retrying: %s", attempt, exc.orig)
                time.sleep(min(0.2, 0.005 * 2 ** min(attempt, 6)) * (0.5 + random.random()))

    def store_path(self, relative: str) -> Path:
        """Absolute path of a file in the managed store from its stored relative path."""
        return self.store_dir.joinpath(*relative.split("/"))

    def dispose(self) -> None:
        self.engine.dispose()
