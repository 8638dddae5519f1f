"""kind_of_file remembers what it read from a Secondary Capture's header (study_ref classifies the first file
of every series on each open, on the GUI thread) and reads a file again once it was replaced; the worklist
warms it for the studies it lists (app.db.queries.warm_series_kinds)."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from app.dicom_objects import classify
from app.dicom_objects.classify import ACQUIRED, DERIVED, kind_of_file

SC = "1.2.840.10008.5.1.4.1.1.7"


def _write_sc(path: Path, image_type: list[str], comment: str = "") -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SC, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = SC, meta.MediaStorageSOPInstanceUID, "OT"
    ds.ImageType = image_type
    ds.ImageComments = comment
    ds.save_as(path, enforce_file_format=True)


def test_a_header_is_read_once_and_again_when_the_file_changes(tmp_path: Path, monkeypatch) -> None:
    reads: list[str] = []
    real = pydicom.dcmread
    monkeypatch.setattr(classify.pydicom, "dcmread", lambda p, **kw: (reads.append(str(p)), real(p, **kw))[1])
    path = tmp_path / "sc.dcm"
    _write_sc(path, ["ORIGINAL", "PRIMARY"])
    assert kind_of_file(path, SC, "OT") == ACQUIRED
    assert kind_of_file(path, SC, "OT") == ACQUIRED
    assert reads == [str(path)]  # the second answer came from the cache
    _write_sc(path, ["DERIVED", "SECONDARY"], comment="a longer file: its size differs")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert kind_of_file(path, SC, "OT") == DERIVED  # replaced in place: read again
    assert len(reads) == 2
    path.unlink()
    assert kind_of_file(path, SC, "OT") == DERIVED  # gone: not evidence, no crash
    assert len(reads) == 2


def test_the_worklists_warming_leaves_no_header_for_the_open_to_read(db, tmp_path: Path, monkeypatch) -> None:
    from app.db.queries import study_ref, warm_series_kinds
    from app.importer import ImportService
    from tests.support.synthetic_dicom import SyntheticStudy, make_instance

    study = SyntheticStudy("SC^SCANNED", "SC1")
    folder = tmp_path / "sc"
    folder.mkdir()
    for number, image_type in ((1, ["ORIGINAL", "PRIMARY"]), (2, ["DERIVED", "SECONDARY"])):
        ds = make_instance(study, generate_uid(), instance_number=1, series_number=number)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SC  # a scanned film / screen capture
        ds.ImageType = image_type
        ds.save_as(folder / f"{number}.dcm", enforce_file_format=True)
    assert ImportService(db).run([folder]).imported == 2
    monkeypatch.setattr(classify, "_HEADER_KINDS", {})
    reads: list[str] = []
    real = pydicom.dcmread
    monkeypatch.setattr(classify.pydicom, "dcmread", lambda p, **kw: (reads.append(str(p)), real(p, **kw))[1])
    with db.session() as session:
        assert warm_series_kinds(session, [study.study_uid], lambda: False) == 2
        assert len(reads) == 2
        ref = study_ref(session, study.study_uid)
        assert len(reads) == 2  # the open read no header
        assert [s.number for s in ref.series] == [1, 2] and len(ref.derived_series) == 1  # and classified alike
        assert warm_series_kinds(session, [study.study_uid], lambda: True) == 0  # cancelled: stops at once
