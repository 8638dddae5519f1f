""""Of Interest" flags persist per study in the database (migration 0011) and survive a restart."""

from __future__ import annotations

import pytest

from app.db.database import Database
from app.db.interest_store import DbInterestStore
from viewer.presentation.interest import InterestRef, InterestStore

A = InterestRef("1.2.3", "1.2.3.1", "1.2.840.10008.5.1.4.1.1.1.1", "1.2.3.1.1")
B = InterestRef("1.2.3", "1.2.3.2", "1.2.840.10008.5.1.4.1.1.1.1", "1.2.3.2.1")


def test_flags_round_trip_idempotent_and_survive_restart(db: Database) -> None:
    store: InterestStore = DbInterestStore(db)
    store.set(A, True)
    store.set(A, True)  # flagging twice keeps one row
    store.set(B, True)
    store.set(InterestRef("9.9", "9.9.1", A.sop_class_uid, "9.9.1.1"), True)
    assert store.load("1.2.3") == [A, B]
    store.set(A, False)
    store.set(A, False)  # unflagging what is not flagged is no error
    url = db.url
    db.dispose()
    fresh = Database.open(url)
    try:
        assert DbInterestStore(fresh).load("1.2.3") == [B]
        assert DbInterestStore(fresh).load("0.0") == []
    finally:
        fresh.dispose()


@pytest.mark.sqlite_only
def test_flag_while_another_writer_commits_a_change_waits_for_it(db: Database) -> None:
    """K pressed while another writer (the access-audit thread) commits: begun as a deferred transaction, the flag
    read whether the image was flagged, then failed with "database is locked" at its write (stale snapshot)."""
    from tests.support.busy_database import other_writer

    store = DbInterestStore(db)
    thread, done = other_writer(db.engine.url.database, 0.5, change=True)
    store.set(A, True)
    thread.join(30)
    assert done.is_set() and store.load("1.2.3") == [A]
    thread, done = other_writer(db.engine.url.database, 0.5, change=True)
    store.set(A, False)
    thread.join(30)
    assert done.is_set() and store.load("1.2.3") == []
