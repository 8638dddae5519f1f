"""Opening the study database: engine, sessions, and migrations applied on every start.

SQLite (the default, a file in the data dir) runs in WAL mode so the worklist can read while an import
writes, with foreign keys ON; any other SQLAlchemy URL (PostgreSQL) comes from Settings / RADSTATION_DB_URL.
A plain `postgresql://` URL uses psycopg 3 (the `postgres` extra), not SQLAlchemy's psycopg2 default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from app.db.migrate import upgrade_to_head
from app.paths import data_dir
from app.settings import Settings


class DatabaseError(RuntimeError):
    """The database URL is unusable or the schema could not be brought up to date."""


def default_url() -> str:
    return f"sqlite:///{(data_dir() / 'radstation.db').as_posix()}"


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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")  # an import writing must not make the worklist fail
    cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a crash loses at most the last commit
    cur.close()


class Database:
    """One database: its engine, a session factory and the managed file store beside it."""

    def __init__(self, engine: Engine, store_dir: Path) -> None:
        self.engine = engine
        self.store_dir = store_dir
        self._sessions = sessionmaker(engine, expire_on_commit=False, info={"store_dir": str(store_dir)})

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @classmethod
    def open(cls, url: str | None = None, *, store_dir: Path | None = None, migrate: bool = True) -> Database:
        """Open `url` (default: Settings().db_url, then the SQLite file in the data dir) and migrate it."""
        url = url or Settings().db_url or default_url()
        parsed = normalise_url(url)
        _check_driver(parsed)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(parsed)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:  # a server shared by many workstations: connections dropped by it or a firewall are retried
            engine = create_engine(parsed, pool_pre_ping=True)
        db = cls(engine, store_dir or (data_dir() / "store"))
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

    def store_path(self, relative: str) -> Path:
        """Absolute path of a file in the managed store from its stored relative path."""
        return self.store_dir.joinpath(*relative.split("/"))

    def dispose(self) -> None:
        self.engine.dispose()
