"""ManagedStore.place: a staged file takes its final name only where that name is free, whether the store's
file system has hard links (the usual way) or not (placeholder + rename)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from app.importer.store import ManagedStore

REL = "1.2.3/1.2.3.4/1.2.3.4.5.dcm"


def _staged(store: ManagedStore, data: bytes):  # type: ignore[no-untyped-def]
    out = store.writer()
    out.write(data)
    return out.finish()


@pytest.mark.parametrize("links", [True, False], ids=["hard-link", "no-hard-links"])
def test_place_never_replaces_a_stored_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: bool) -> None:
    if not links:
        def refuse(*_a, **_k):  # noqa: ANN002, ANN003, ANN202 - a file system without hard links
            raise PermissionError(1, "Operation not permitted")
        monkeypatch.setattr(os, "link", refuse)
    store = ManagedStore(tmp_path / "store")
    first = _staged(store, b"first")
    assert store.place(first, REL) == REL  # the study's and series' folders are made on the way
    assert not first.path.exists()
    second = _staged(store, b"second")
    assert store.place(second, REL) == "1.2.3/1.2.3.4/1.2.3.4.5.1.dcm"  # taken: numbered beside it
    third = _staged(store, b"third")
    assert store.place(third, REL) == "1.2.3/1.2.3.4/1.2.3.4.5.2.dcm"
    assert store.absolute(REL).read_bytes() == b"first"  # never replaced
    assert store.absolute("1.2.3/1.2.3.4/1.2.3.4.5.1.dcm").read_bytes() == b"second"
    assert sorted(store.staging.iterdir()) == []
    for folder in (store.absolute("1.2.3"), store.absolute("1.2.3/1.2.3.4")):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.absolute(REL).stat().st_mode) == 0o600
    assert store.absolute(REL).stat().st_nlink == 1  # the staging name is gone, not a second link


def test_place_of_a_vanished_staged_file_fails_and_leaves_no_name(tmp_path: Path) -> None:
    store = ManagedStore(tmp_path / "store")
    staged = _staged(store, b"x")
    staged.path.unlink()
    with pytest.raises(FileNotFoundError):
        store.place(staged, REL)
    assert not store.absolute(REL).exists()
