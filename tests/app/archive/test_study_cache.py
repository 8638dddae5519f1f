"""The local store as a bounded LRU cache: least recently opened studies go first, pinned ones never."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.archive.cache import StudyCache
from app.archive.pins import CachePins


def _study(root: Path, uid: str, kib: int) -> None:
    folder = root / uid / f"{uid}.1"
    folder.mkdir(parents=True)
    (folder / f"{uid}.1.1.dcm").write_bytes(b"\0" * (kib * 1024))


def test_evicts_least_recently_opened_first_and_never_a_pinned_study(tmp_path) -> None:
    root = tmp_path / "store"
    for uid in ("1.1", "1.2", "1.3", "1.4"):
        _study(root, uid, 100)
    cache = StudyCache(root, limit_bytes=250 * 1024)
    for when, uid in enumerate(("1.3", "1.1", "1.4", "1.2")):  # 1.3 opened longest ago, 1.2 last
        cache.touch(uid, when=1000.0 + when)
    cache.pin("1.3", "report in progress")
    assert cache.usage() == 400 * 1024
    gone = cache.evict(keep={"1.1"})  # 1.1 is open in the viewer right now
    assert [s.study_uid for s in gone] == ["1.4", "1.2"]  # 1.3 pinned, 1.1 kept: the next oldest go
    assert cache.holds("1.3") and cache.holds("1.1") and not cache.holds("1.4") and not cache.holds("1.2")
    assert cache.usage() <= 250 * 1024
    # the order and the pins survive a restart (a JSON file in the store, not the shared database)
    again = StudyCache(root, limit_bytes=50 * 1024)
    assert again.pinned() == {"1.3": "report in progress"}
    assert [s.study_uid for s in again.evict()] == ["1.1"]  # still over the limit: only the pinned one left
    assert again.holds("1.3")
    again.unpin("1.3")
    assert [s.study_uid for s in again.evict()] == ["1.3"] and again.usage() == 0


def test_no_limit_keeps_everything_and_a_damaged_state_file_loses_only_the_order(tmp_path) -> None:
    root = tmp_path / "store"
    _study(root, "2.1", 10)
    _study(root, "2.2", 10)
    (root / ".staging").mkdir()  # the importer's staging folder is not a study
    (root / ".cache-state.json").write_text("{not json")
    cache = StudyCache(root)
    assert cache.evict() == [] and {s.study_uid for s in cache.studies()} == {"2.1", "2.2"}
    cache.touch("2.1")
    assert [s.study_uid for s in StudyCache(root).studies()][-1] == "2.1"
    assert [s.study_uid for s in StudyCache(root).evict(limit_bytes=15 * 1024)] == ["2.2"]


@pytest.mark.parametrize("db_backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_pins_in_the_database_survive_a_restart_and_are_this_workstations_own(db, tmp_path) -> None:
    """"Keep on this workstation" is a row in the shared database, per workstation: it survives a restart (a
    new cache object, a wiped state file) and another workstation on the same database does not see it."""
    root = tmp_path / "store"
    for uid in ("3.1", "3.2", "3.3"):
        _study(root, uid, 100)
    here = StudyCache(root, limit_bytes=150 * 1024, pins=CachePins(db, "ws-a"))
    here.pin("3.1", "radb")
    here.pin("3.1", "radb")  # twice is still one pin
    (root / ".cache-state.json").unlink(missing_ok=True)
    restarted = StudyCache(root, limit_bytes=150 * 1024, pins=CachePins(db, "ws-a"))
    assert set(restarted.pinned()) == {"3.1"} and "by radb since" in restarted.pinned()["3.1"]
    assert [s.pinned for s in restarted.studies() if s.study_uid == "3.1"] == [True]
    assert StudyCache(root, pins=CachePins(db, "ws-b")).pinned() == {}  # the other workstation's own
    gone = {s.study_uid for s in restarted.evict()}
    assert gone == {"3.2", "3.3"} and restarted.holds("3.1")  # over the limit, the kept one stays
    restarted.unpin("3.1")
    assert CachePins(db, "ws-a").all() == {} and [s.study_uid for s in restarted.evict(limit_bytes=1)] == ["3.1"]
    assert restarted.remove("3.1") == 0  # gone already: nothing to free
