"""The issue's lost autosaves: another writer (an import, a C-STORE) holds SQLite's write lock longer than
one busy timeout. The save waits and retries instead of failing with "database is locked"."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from app.db import database as database_module
from tests.support.reports_testing import STUDY_UID


def _other_writer(path: str, hold: float, *, change: bool = False) -> tuple[threading.Thread, threading.Event]:
    """Another connection (an import, a C-STORE, the audit writer) takes SQLite's write lock - with `change`, also
    writes a row - and commits `hold` seconds later; returns once it holds the lock, with its thread and an
    event set when it let go."""
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


@pytest.mark.sqlite_only
def test_autosave_waits_out_a_writer_that_holds_the_lock(env, radiologist) -> None:
    v = env.service.open_or_create(STUDY_UID, radiologist)
    held = database_module.BUSY_TIMEOUT_MS / 1000 + 1.5  # longer than SQLite alone would wait
    thread, released = _other_writer(env.db.engine.url.database, held)
    started = time.monotonic()
    text = "Typed while an import held the database."
    revision = env.service.save_draft(v.id, {**v.content.to_dict(), "findings": text}, radiologist)
    waited = time.monotonic() - started
    thread.join(30)
    assert released.is_set() and waited >= held - 0.5  # it really had to wait for the other writer
    assert revision > v.revision
    assert env.service.version(v.id).content.get("findings") == text


@pytest.mark.sqlite_only
def test_report_writes_take_the_write_lock_first_so_a_commit_in_between_cannot_fail_them(env, radiologist) -> None:
    """Access-audit entries are committed by a background thread while the radiologist works. A report write that
    read first and took the lock later (a deferred transaction) failed at once with "database is locked" when
    such a commit landed in between, whatever the busy timeout; the report's write transactions now begin
    holding the lock, so they wait for the other writer and then succeed."""
    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": "Small left effusion."}, radiologist)
    thread, done = _other_writer(env.db.engine.url.database, 0.5, change=True)  # changes the database, too
    env.service.mark_preliminary(v.id, radiologist)  # failed with "database is locked" as a deferred transaction
    thread.join(30)
    assert done.is_set() and env.service.version(v.id).status == "preliminary"


@pytest.mark.sqlite_only
def test_adding_a_user_while_another_writer_commits_a_change_waits_for_it(env, radiologist) -> None:
    """The same race for user accounts: add_user reads (does the name exist, may this actor add) and then writes;
    begun as a deferred transaction it failed with "database is locked" when another writer committed between."""
    from tests.support.reports_testing import ADMIN, PASSWORD, admin_session

    admin = admin_session(env)
    thread, done = _other_writer(env.db.engine.url.database, 0.5, change=True)
    env.users.add_user("second_reader", PASSWORD, "radiologist", actor=admin)
    thread.join(30)
    assert done.is_set() and "second_reader" in {u["username"] for u in env.users.list_users()}
    assert ADMIN in {u["username"] for u in env.users.list_users()}
