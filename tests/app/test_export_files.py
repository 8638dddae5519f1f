"""Exported files are private to the user who exported them: another local account (or anything running
under it) cannot read the patient data an export leaves in a shared or home folder, whatever the umask, and
a link planted where an export will write is refused, never written through."""

from __future__ import annotations

import os
import stat
from datetime import date

import pytest

from app.export_files import copy_private, write_private
from app.importer import ImportService
from app.paths import private_dir
from app.study_actions import export_study, load_study
from tests.support.synthetic_dicom import SyntheticStudy, write_series


@pytest.fixture
def open_umask():
    old = os.umask(0o022)  # the usual desktop umask: new files 0644, folders 0755
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _study(db, tmp_path) -> str:
    write_series(tmp_path / "src", SyntheticStudy("DOE^JANE", "P7", date(2025, 1, 2), "ACC-7", "CT CHEST", "CT"), 2)
    ImportService(db).run([tmp_path / "src"])
    return load_study(db, next(iter(_uids(db))))


def _uids(db):
    from sqlalchemy import select

    from app.db.models import Study

    with db.session() as s:
        return [u for (u,) in s.execute(select(Study.study_uid))]


@pytest.mark.parametrize("anonymised", [False, True])
def test_study_export_files_are_0600_and_created_folders_0700(db, tmp_path, open_umask, anonymised):
    study = _study(db, tmp_path)
    for series in study.series:  # a store written by an older version: files 0644
        for p in series.paths:
            os.chmod(p, 0o644)
    picked = tmp_path / "usb"
    picked.mkdir(mode=0o755)
    result = export_study(study, picked / "exports" / "today", anonymised=anonymised)
    files = list(result.folder.rglob("*.dcm"))
    assert len(files) == 2 and all(_mode(f) == 0o600 for f in files)
    made = [picked / "exports", picked / "exports" / "today", result.folder, *{f.parent for f in files}]
    assert all(_mode(d) == 0o700 for d in made)
    assert _mode(picked) == 0o755  # the folder the user picked is theirs and keeps its rights


def test_a_link_planted_at_the_export_target_is_refused_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("the attacker wants this overwritten or its contents leaked")
    drop = private_dir(tmp_path / "shared", tighten=False)
    os.symlink(victim, drop / "IM00000.dcm")
    with pytest.raises(OSError, match="symbolic link"):
        write_private(drop / "IM00000.dcm", b"patient data")
    with pytest.raises(OSError, match="symbolic link"):
        copy_private(victim, drop / "IM00000.dcm")
    assert victim.read_text().startswith("the attacker wants")


def test_a_planted_link_stops_a_study_export_with_the_file_named(db, tmp_path):
    study = _study(db, tmp_path)
    first = export_study(study, tmp_path / "out")
    target = next(iter(sorted(first.folder.rglob("IM00000.dcm"))))
    target.unlink()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, target)
    with pytest.raises(OSError, match="IM00000.dcm"):
        export_study(study, tmp_path / "out")
    assert victim.read_text() == "keep me"
