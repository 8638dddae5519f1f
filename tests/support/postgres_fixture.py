"""A real PostgreSQL server for tests (Debian's `postgresql` binaries), started and stopped like Orthanc.

Loaded by tests/conftest.py as a pytest plugin. The session-scoped fixture `postgres` yields a running
`PostgresServer`; `server.new_database()` returns the SQLAlchemy URL of a fresh, empty database, so every
test gets its own schema and migrations run from scratch. initdb refuses to run as root, so under root
(CI) the cluster belongs to the `postgres` system user the Debian package creates.

The cluster runs with fsync off: it lives in a temp dir for one test session and never holds real data.
Tests that use the fixture get the `postgres` marker, so `-m "not postgres"` skips them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SUPERUSER = "radstation"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin_dir() -> Path | None:
    """Where initdb/postgres live: on PATH, else Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def postgres_available() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return postgres_bin_dir() is not None


@dataclass
class PostgresServer:
    process: subprocess.Popen
    workdir: Path
    port: int
    host: str = "127.0.0.1"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=SUPERUSER, dbname=database,
                             autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self, prefix: str = "t") -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.running:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: roll back clients, stop cleanly
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_postgres(workdir: Path) -> PostgresServer:
    """initdb a cluster in `workdir` and start it on a free loopback port; raises if it does not come up."""
    bindir = postgres_bin_dir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    workdir.mkdir(parents=True, exist_ok=True)
    user = None
    if os.geteuid() == 0:  # initdb and postgres refuse root: run them as the Debian package's user
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise RuntimeError("running as root and there is no 'postgres' user to own the test cluster") from exc
        user = "postgres"
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
    data = workdir / "data"
    log = workdir / "postgres.log"
    init = subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                           "--locale=C", "--no-sync"], user=user, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, cwd=workdir, text=True)
    if init.returncode:
        raise RuntimeError(f"initdb failed in {data}: {init.stderr.strip()[-2000:]}")
    port = _free_port()
    with open(log, "wb") as out:
        if user:
            os.chown(log, pwd.getpwnam(user).pw_uid, -1)
        proc = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(workdir),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=out, stderr=subprocess.STDOUT, user=user, cwd=workdir)
    server = PostgresServer(proc, workdir, port)
    deadline = time.monotonic() + 30
    import psycopg

    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited at start: {log.read_text(errors='replace')[-2000:]}")
        try:
            psycopg.connect(host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres",
                            connect_timeout=2).close()
            return server
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"postgres did not accept connections: {log.read_text(errors='replace')[-2000:]}"
                                   ) from exc
            time.sleep(0.1)


def database_url(request: pytest.FixtureRequest, backend: str) -> str | None:
    """None for SQLite (the caller's default file), else a fresh database on the session's PostgreSQL."""
    if backend == "postgres":
        return request.getfixturevalue("postgres").new_database()
    return None


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole session (databases are per test)."""
    if not postgres_available():
        pytest.skip("PostgreSQL or psycopg is not installed (apt-get install postgresql; pip install -e '.[postgres]')")
    # Its own dir under /tmp, not pytest's 0700 tree, which the `postgres` user could not enter under root.
    workdir = Path(tempfile.mkdtemp(prefix="radstation-pg-"))
    try:
        server = start_postgres(workdir)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the `postgres` fixture (directly or through a db fixture) carry the `postgres` marker."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        callspec = getattr(item, "callspec", None)
        if "postgres" in names or (callspec is not None and callspec.params.get("db_backend") == "postgres"):
            item.add_marker(pytest.mark.postgres)
