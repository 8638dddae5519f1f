"""Another SQLite connection that holds the write lock (an import, a C-STORE, the access-audit writer), for tests
that a write waits for it instead of failing with "database is locked"."""

from __future__ import annotations

import sqlite3
import threading
import time


def other_writer(path: str, hold: float, *, change: bool = False) -> tuple[threading.Thread, threading.Event]:
    """Another connection takes SQLite's write lock - with `change`, also writes a row - and commits `hold`
    seconds later; returns once it holds the lock, with its thread and an event set when it let go.

    With `change`, a deferred transaction that read before the commit and writes after it fails at once with
    "database is locked" (its snapshot is stale, whatever the busy timeout): the race the write lock taken at
    BEGIN prevents."""
    locked, released = threading.Event(), threading.Event()

    def run() -> None:
        con = sqlite3.connect(path, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            if change:
                con.execute("CREATE TABLE IF NOT EXISTS probe_other_writer (x INTEGER)")
                con.execute("INSERT INTO probe_other_writer VALUES (1)")
            locked.set()
            time.sleep(hold)
            con.execute("COMMIT")
        finally:
            released.set()
            con.close()

    thread = threading.Thread(target=run)
    thread.start()
    assert locked.wait(10)
    return thread, released
