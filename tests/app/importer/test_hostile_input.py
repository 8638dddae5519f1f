"""Hostile and damaged input, as a security review would feed it: zip bombs, lying archives, symbolic
links out of the media, truncated structured reports, a crash in the middle of an import - and the valid
but unusual files (YBR_FULL_422, big endian) that must import and display."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import BasicTextSRStorage, ExplicitVRBigEndian, ExplicitVRLittleEndian, generate_uid
from sqlalchemy import func, select, update

from app.db.database import Database
from app.db.models import ImportBatch, Instance, StudyFlag
from app.db.queries import search_studies
from app.importer import ImportService
from app.importer.integrity import check_file
from app.importer.sources import ZipLimits
from tests.support.synthetic_dicom import SyntheticStudy, make_instance, write_series
from viewer.io.image import load_image


@pytest.fixture
def db(tmp_path: Path, monkeypatch) -> Database:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    database = Database.open(f"sqlite:///{tmp_path / 'h.db'}", store_dir=tmp_path / "data" / "store")
    yield database
    database.dispose()


def _count(db: Database, model) -> int:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


# -- zips ---------------------------------------------------------------------------------------------
def _zip_of(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f.name)
    return archive


def test_zip_that_lies_about_its_size_is_refused_before_extraction(db: Database, tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.dcm", b"\0" * 100_000)
    raw = bytearray(archive.read_bytes())
    central = raw.rindex(b"PK\x01\x02")
    struct.pack_into("<L", raw, central + 24, 0xFFFF0000)  # central directory: "uncompressed size 4 GB"
    archive.write_bytes(bytes(raw))
    report = ImportService(db).run([archive])
    assert report.imported == 0
    reason = report.errors[0].reason
    assert "zip not extracted" in reason and "fold" in reason and "zip bomb" in reason
    assert not any((db.store_dir.parent / "import-work").rglob("*.dcm"))


def test_zip_limits_on_total_size_and_member_count(db: Database, tmp_path: Path) -> None:
    write_series(tmp_path / "ten", SyntheticStudy(), 10)
    archive = _zip_of(tmp_path / "ten", tmp_path / "ten.zip")
    few = ImportService(db, zip_limits=ZipLimits(max_members=5)).run([archive])
    assert few.imported == 0 and "holds 10 files; at most 5" in few.errors[0].reason
    small = ImportService(db, zip_limits=ZipLimits(max_total_bytes=4000)).run([archive])
    assert small.imported == 0 and "at most 3.9 KiB are extracted per import" in small.errors[0].reason
    assert ImportService(db).run([archive]).imported == 10  # within the default limits it imports


def test_corrupt_compressed_member_is_reported_and_the_rest_imports(db: Database, tmp_path: Path) -> None:
    """Found by fuzzing: a member whose deflate stream is damaged raised zlib.error out of the whole import."""
    write_series(tmp_path / "three", SyntheticStudy(), 3)
    archive = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted((tmp_path / "three").iterdir()):
            z.write(f, f.name)
        z.writestr("zz_damaged.dcm", b"DICM" * 500)
    raw = bytearray(archive.read_bytes())
    header = raw.rindex(b"PK\x03\x04")  # the last member's local header, then its name, then deflate data
    start = header + 30 + len("zz_damaged.dcm")
    raw[start:start + 2] = b"\xff\xff"  # an invalid deflate block type
    archive.write_bytes(bytes(raw))
    report = ImportService(db).run([archive])
    assert report.imported == 3
    (issue,) = report.errors
    assert issue.path.endswith("damaged.zip!/zz_damaged.dcm") and "cannot extract from zip" in issue.reason


def test_extraction_is_private_and_a_killed_import_leaves_nothing_behind(db: Database, tmp_path: Path) -> None:
    work = db.store_dir.parent / "import-work"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that is certainly gone: "the import that was killed"
    stale = work / f"batch-{child.pid}-abc" / "zip1"
    stale.mkdir(parents=True)
    (stale / "leftover.dcm").write_bytes(b"patient data")
    write_series(tmp_path / "in", SyntheticStudy(), 2)
    seen_modes: list[int] = []
    original = zipfile.ZipFile.open

    def spy(self, name, *a, **kw):  # type: ignore[no-untyped-def]
        for parent in Path(work).iterdir():
            if parent.name.startswith(f"batch-{os.getpid()}-"):
                seen_modes.append(parent.stat().st_mode & 0o777)
        return original(self, name, *a, **kw)

    archive = _zip_of(tmp_path / "in", tmp_path / "in.zip")
    zipfile.ZipFile.open = spy  # type: ignore[method-assign]
    try:
        report = ImportService(db).run([archive])
    finally:
        zipfile.ZipFile.open = original  # type: ignore[method-assign]
    assert report.imported == 2
    assert seen_modes and set(seen_modes) == {0o700}
    assert not stale.exists() and list(work.iterdir()) == []
    assert work.stat().st_mode & 0o777 == 0o700


def test_concurrent_imports_of_overlapping_sources_lose_nothing(db: Database, tmp_path: Path) -> None:
    paths = write_series(tmp_path / "in", SyntheticStudy(), 24)
    archive = _zip_of(tmp_path / "in", tmp_path / "in.zip")
    reports = []

    def run(sources: list[Path]) -> None:
        reports.append(ImportService(db, commit_every=5).run(sources))

    threads = [threading.Thread(target=run, args=([tmp_path / "in"],)), threading.Thread(target=run, args=([archive],))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(reports) == 2
    for r in reports:
        assert r.failed == 0, r.format_table()
        assert r.imported + r.duplicates == len(paths)
    assert sum(r.imported for r in reports) == len(paths) == _count(db, Instance)


# -- symbolic links ---------------------------------------------------------------------------------------
def test_symlinks_leaving_the_folder_or_media_are_refused(db: Database, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    secret = write_series(outside, SyntheticStudy(patient_id="SECRET"), 1)[0]
    folder = tmp_path / "folder"
    inside = write_series(folder, SyntheticStudy(patient_id="OK"), 1)[0]
    (folder / "escape.dcm").symlink_to(secret)
    (folder / "alias.dcm").symlink_to(inside)  # inside the folder: fine (and a duplicate of the file)
    (folder / "linked").symlink_to(outside, target_is_directory=True)  # a whole folder elsewhere
    report = ImportService(db).run([folder])
    assert report.imported == 1
    assert any("outside the folder" in i.reason and i.path.endswith("escape.dcm") for i in report.errors)
    assert any("folder outside the folder" in i.reason and i.path.endswith("linked") for i in report.errors)

    from pydicom.fileset import FileSet

    media = tmp_path / "media"
    fs = FileSet()
    fs.add(pydicom.dcmread(write_series(tmp_path / "cd", SyntheticStudy(patient_id="CD"), 1)[0]))
    fs.write(media)
    stored = next(p for p in media.rglob("*") if p.is_file() and p.name != "DICOMDIR")
    stored.unlink()
    stored.symlink_to(secret)  # the CD's file now points at something outside the media
    report = ImportService(db).run([media / "DICOMDIR"])
    assert report.imported == 0
    assert "leaves the media folder" in report.errors[0].reason
    with db.session() as s:
        assert "SECRET" not in {r.patient_id for r in search_studies(s)}


# -- truncation -------------------------------------------------------------------------------------------
def _sr(items: int) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = BasicTextSRStorage
    meta.MediaStorageSOPInstanceUID = uid = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = BasicTextSRStorage, uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "TRUNC^SR", "TR1", "SR"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    content = []
    for n in range(items):
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "121071", "DCM", "Finding"
        item.ConceptNameCodeSequence = Sequence([code])
        item.TextValue = f"finding number {n} " + "x" * 40
        content.append(item)
    ds.ContentSequence = Sequence(content)
    return ds


@pytest.mark.parametrize("undefined", [True, False])
def test_structured_report_cut_short_is_stored_marked_incomplete(db: Database, tmp_path: Path, undefined: bool) -> None:
    ds = _sr(28)
    ds.ContentSequence.is_undefined_length = undefined
    for item in ds.ContentSequence:
        item.is_undefined_length_sequence_item = undefined
    whole = tmp_path / "whole.dcm"
    ds.save_as(whole, enforce_file_format=True)
    data = whole.read_bytes()
    tenth = data.index(b"finding number 10 ")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:tenth])  # 10 of 28 content items survive
    if undefined:
        assert 10 <= len(pydicom.dcmread(cut).ContentSequence) < 28  # pydicom alone reads it without complaint
    assert not check_file(whole).truncated and check_file(cut).truncated
    report = ImportService(db).run([cut])
    assert report.imported == 1
    assert any("stored marked incomplete" in w.reason for w in report.warnings)
    with db.session() as s:
        inst = s.scalars(select(Instance)).one()
        flag = s.scalars(select(StudyFlag)).one()
        rows = search_studies(s)
    assert "ContentSequence" in inst.incomplete and flag.kind == "incomplete_objects"
    assert rows[0].attention == "incomplete objects"


def _seg() -> Dataset:
    """A DICOM Segmentation (highdicom, as the Explain export writes it) over a synthetic CT slice."""
    from explain.dicom_maps import MapSource, build_segmentation

    source = make_instance(SyntheticStudy(patient_id="SEG"), generate_uid(), size=64)
    for keyword in ("PatientBirthDate", "PatientSex", "ReferringPhysicianName", "AccessionNumber", "StudyID"):
        setattr(source, keyword, "")
    values = np.zeros((64, 64), np.float32)
    values[10:40, 10:40] = 0.9
    return build_segmentation(source, values, MapSource("attention"), 0.5)


def test_every_truncation_of_rt_seg_and_sr_objects_is_caught(tmp_path: Path) -> None:
    sources = {"sr": _sr(28), "seg": _seg()}
    for name in ("rtplan.dcm", "rtstruct.dcm", "rtdose.dcm"):
        path = get_testdata_file(name)
        if path:
            sources[name] = pydicom.dcmread(path, force=True)
    missed = []
    for name, ds in sources.items():
        whole = tmp_path / f"{name}.whole.dcm"
        ds.save_as(whole, enforce_file_format=True)
        data = whole.read_bytes()
        start = check_file(whole).dataset_offset
        for cut in np.linspace(start + 64, len(data) - 1, 15).astype(int):
            part = tmp_path / "part.dcm"
            part.write_bytes(data[:cut])
            if not check_file(part).truncated:
                missed.append((name, int(cut)))
    # a cut exactly between two top-level elements leaves a well-formed (shorter) data set: at most a few
    assert len(missed) <= 2, missed


def test_import_cut_off_by_a_crash_is_flagged_until_imported_again(db: Database, tmp_path: Path) -> None:
    study = SyntheticStudy(patient_id="CRASH")
    write_series(tmp_path / "a", study, 3)
    assert ImportService(db).run([tmp_path / "a"]).imported == 3
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with db.session() as s:  # make it look like that import's process died before finishing
        s.execute(update(ImportBatch).values(finished_at=None, owner=f"{socket.gethostname()}:{child.pid}"))
    write_series(tmp_path / "b", SyntheticStudy(patient_id="OTHER"), 1)
    ImportService(db).run([tmp_path / "b"])
    with db.session() as s:
        crash = next(r for r in search_studies(s) if r.patient_id == "CRASH")
    assert crash.attention == "import interrupted"
    again = ImportService(db).run([tmp_path / "a"])
    assert again.duplicates == 3
    with db.session() as s:
        crash = next(r for r in search_studies(s) if r.patient_id == "CRASH")
    assert crash.attention == ""


# -- valid but unusual encodings ----------------------------------------------------------------------------
def _stored_image(db: Database):  # type: ignore[no-untyped-def]
    with db.session() as s:
        inst = s.scalars(select(Instance)).one()
    return load_image(db.store_path(inst.file_path))


def test_ybr_full_422_uncompressed_imports_and_displays(db: Database) -> None:
    source = Path(get_testdata_file("SC_ybr_full_422_uncompressed.dcm"))
    report = ImportService(db).run([source])
    assert report.imported == 1, report.format_table()
    frame = _stored_image(db).frame(0)
    expected = pydicom.dcmread(source).pixel_array  # pydicom's own decode, converted to RGB
    assert frame.shape == (100, 100, 3) and frame.std() > 0
    assert np.abs(frame.astype(int) - expected.astype(int)).max() <= 2


@pytest.mark.parametrize("bits", [8, 16])
def test_big_endian_files_import_and_display_like_little_endian(db: Database, tmp_path: Path, bits: int) -> None:
    ds = make_instance(SyntheticStudy(patient_id="BE"), generate_uid(), size=32)
    rng = np.random.default_rng(bits)
    if bits == 8:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        pixels = rng.integers(0, 255, (32, 32), dtype=np.uint8)
        ds.PixelData = pixels.tobytes()
    else:
        pixels = rng.integers(-1000, 3000, (32, 32), dtype=np.int16)
        ds.PixelData = pixels.astype(">i2").tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    path = tmp_path / "be.dcm"
    ds.save_as(path, enforce_file_format=True, little_endian=False, implicit_vr=False)
    report = ImportService(db).run([path])
    assert report.imported == 1, report.format_table()
    assert np.array_equal(_stored_image(db).frame(0), pixels)
    mr = Path(get_testdata_file("MR_small_bigendian.dcm"))
    assert ImportService(db).run([mr]).imported == 1
    assert np.array_equal(load_image(mr).frame(0), load_image(get_testdata_file("MR_small.dcm")).frame(0))



def test_file_with_a_reused_uid_and_new_content_is_kept_and_listed(db: Database, tmp_path: Path, capsys) -> None:
    from app.cli import main

    ds = make_instance(SyntheticStudy(patient_id="TWICE"), generate_uid(), size=8)
    (tmp_path / "a").mkdir()
    ds.save_as(tmp_path / "a" / "one.dcm", enforce_file_format=True)
    ds.PixelData = bytes(len(ds.PixelData))
    (tmp_path / "b").mkdir()
    ds.save_as(tmp_path / "b" / "one.dcm", enforce_file_format=True)
    assert ImportService(db).run([tmp_path / "a"]).imported == 1
    again = ImportService(db).run([tmp_path / "b"])
    assert again.imported == 1 and "kept beside it" in again.warnings[0].reason
    assert ImportService(db).run([tmp_path / "a"]).duplicates == 1  # the same bytes again: a plain duplicate
    with db.session() as s:
        assert search_studies(s)[0].attention == "conflicting copies"
    assert main(["conflicts", "--db-url", db.url]) == 0
    out = capsys.readouterr().out
    assert ds.SOPInstanceUID in out and "1 conflicting copy" in out and str(tmp_path / "b" / "one.dcm") in out
