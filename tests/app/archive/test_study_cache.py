"""The local store as a bounded LRU cache: least recently opened studies go first, pinned ones never."""

from __future__ import annotations

from pathlib import Path

from app.archive.cache import StudyCache


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
