"""One helper makes private folders: the app's own (tightened when they exist) and an export's (left as found)."""

from __future__ import annotations

import os
import stat

import pytest

from app.paths import private_dir


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)  # a typical desktop umask: mkdir alone would make 0755 folders
    yield
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_every_missing_folder_is_owner_only_whatever_the_umask(tmp_path, loose_umask):
    leaf = private_dir(tmp_path / "a" / "b" / "c")
    assert leaf == tmp_path / "a" / "b" / "c"
    assert [_mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", leaf)] == [0o700] * 3


def test_an_existing_app_folder_is_tightened_but_a_picked_export_folder_is_not(tmp_path, loose_umask):
    ours, theirs = tmp_path / "data", tmp_path / "Desktop"
    ours.mkdir(mode=0o755)
    theirs.mkdir(mode=0o755)
    assert _mode(private_dir(ours)) == 0o700
    assert _mode(private_dir(theirs, tighten=False)) == 0o755
    made = private_dir(theirs / "export" / "today", tighten=False)
    assert _mode(made) == 0o700 and _mode(theirs / "export") == 0o700 and _mode(theirs) == 0o755
