"""The issue's lost autosaves: another writer (an import, a C-STORE) holds SQLite's write lock longer than
one busy timeout. The save waits and retries instead of failing with "database is locked"."""

from __future__ import annotations

import time

import pytest

from app.db import database as database_module
from tests.support.busy_database import other_writer
from tests.support.reports_testing import STUDY_UID


@pytest.mark.sqlite_only
def test_autosave_waits_out_a_writer_that_holds_the_lock(env, radiologist) -> None:
    v = env.service.open_or_create(STUDY_UID, radiologist)
    held = database_module.BUSY_TIMEOUT_MS / 1000 + 1.5  # longer than SQLite alone would wait
    thread, released = other_writer(env.db.engine.url.database, held)
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
    thread, done = other_writer(env.db.engine.url.database, 0.5, change=True)  # changes the database, too
    env.service.mark_preliminary(v.id, radiologist)  # failed with "database is locked" as a deferred transaction
    thread.join(30)
    assert done.is_set() and env.service.version(v.id).status == "preliminary"


@pytest.mark.sqlite_only
def test_adding_a_user_while_another_writer_commits_a_change_waits_for_it(env, radiologist) -> None:
    """The same race for user accounts: add_user reads (does the name exist, may this actor add) and then writes;
    begun as a deferred transaction it failed with "database is locked" when another writer committed between."""
    from tests.support.reports_testing import ADMIN, PASSWORD, admin_session

    admin = admin_session(env)
    thread, done = other_writer(env.db.engine.url.database, 0.5, change=True)
    env.users.add_user("second_reader", PASSWORD, "radiologist", actor=admin)
    thread.join(30)
    assert done.is_set() and "second_reader" in {u["username"] for u in env.users.list_users()}
    assert ADMIN in {u["username"] for u in env.users.list_users()}


@pytest.mark.sqlite_only
def test_outbox_writes_while_another_writer_commits_a_change_wait_for_it(env, radiologist) -> None:
    """The outbox's read-then-write transactions (queue with its audit entry, retry now, crash recovery) begin
    holding the write lock too: as deferred transactions they failed with "database is locked"."""
    from app.pacs.nodes import PacsNode
    from app.reports.outbox import Outbox
    from tests.support.reports_testing import PASSWORD, free_port

    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": "Queued while the audit writer commits."},
                           radiologist)
    signed = env.service.sign(v.id, radiologist, PASSWORD)
    node = PacsNode(name="later", protocol="dimse", ae_title="LATER", host="127.0.0.1", port=free_port(), timeout=2)
    box = Outbox(env.service, nodes=lambda _name: node)
    path = env.db.engine.url.database
    thread, done = other_writer(path, 0.5, change=True)
    item_id, = box.enqueue(signed.id, "later", radiologist)
    thread.join(30)
    assert done.is_set() and box.items()[0].state == "queued"
    thread, done = other_writer(path, 0.5, change=True)
    box.retry_now(item_id)
    thread.join(30)
    assert done.is_set() and box.items()[0].state == "retry"
    thread, done = other_writer(path, 0.5, change=True)
    assert box.recover() == 0
    thread.join(30)
    with env.db.session() as s:
        from app.reports import audit

        assert audit.verify_chain(s).ok
