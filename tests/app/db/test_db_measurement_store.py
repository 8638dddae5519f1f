"""Measurements persist per image in the database and survive a restart."""

from __future__ import annotations

import pytest

from app.db.database import Database
from app.db.measurement_store import DbMeasurementStore
from viewer.measure.store import MeasurementStore


def test_round_trip_and_survives_restart(db: Database) -> None:
    store: MeasurementStore = DbMeasurementStore(db)
    items = [
        {"kind": "distance", "geometry": {"points": [[1, 2], [30, 40]]}, "result": {"mm": 12.5}, "label": "a"},
        {"kind": "ellipse", "geometry": {"center": [5, 5], "radii": [2, 3]}, "result": {"mean": -3.0}},
    ]
    store.save("1.2.3", items)
    store.save("1.2.4", [{"kind": "angle", "geometry": {"points": [[0, 0], [1, 0], [1, 1]]}}])
    assert store.load("1.2.3") == items
    url = db.url
    db.dispose()
    fresh = Database.open(url)  # a new process would do exactly this
    try:
        again = DbMeasurementStore(fresh)
        assert again.load("1.2.3") == items
        assert again.load("1.2.4")[0]["kind"] == "angle"
        assert again.load("9.9.9") == []
    finally:
        fresh.dispose()


def test_save_replaces_the_list_and_keeps_rows_by_id(db: Database) -> None:
    store = DbMeasurementStore(db)
    store.save("1.2.3", [{"id": "m1", "kind": "distance"}, {"id": "m2", "kind": "angle"}])
    from sqlalchemy import select

    from app.db.models import Measurement

    with db.session() as s:
        created = {r.extra["id"]: (r.id, r.created_at) for r in s.scalars(select(Measurement))}
    store.save("1.2.3", [{"id": "m2", "kind": "angle", "result": {"deg": 90}}])
    assert store.load("1.2.3") == [{"id": "m2", "kind": "angle", "result": {"deg": 90}}]
    with db.session() as s:
        rows = s.scalars(select(Measurement)).all()
        assert [(r.id, r.created_at) for r in rows] == [created["m2"]]
        assert rows[0].updated_at >= rows[0].created_at
    store.save("1.2.3", [])
    assert store.load("1.2.3") == []


def test_save_needs_an_image_uid(db: Database) -> None:
    with pytest.raises(ValueError, match="SOP Instance UID"):
        DbMeasurementStore(db).save("", [{"kind": "distance"}])


@pytest.mark.sqlite_only
def test_save_while_another_writer_commits_a_change_waits_for_it(db: Database) -> None:
    """A measurement saved while another writer (the access-audit thread) commits: begun as a deferred transaction,
    the save read the image's rows, then failed with "database is locked" at its first write (stale snapshot)."""
    from tests.support.busy_database import other_writer

    store = DbMeasurementStore(db)
    store.save("1.2.3", [{"id": "m1", "kind": "distance"}])
    thread, done = other_writer(db.engine.url.database, 0.5, change=True)
    store.save("1.2.3", [{"id": "m1", "kind": "distance"}, {"id": "m2", "kind": "angle"}])
    thread.join(30)
    assert done.is_set()
    assert store.load("1.2.3") == [{"id": "m1", "kind": "distance"}, {"id": "m2", "kind": "angle"}]
