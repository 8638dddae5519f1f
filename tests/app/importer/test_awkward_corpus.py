"""The awkward-file corpus: pydicom's own test data (some deliberately broken, some not DICOM) plus
generated truncated, pixel-less and wrong-VR files. All go through one import: no crash, a clear
reason per refused file, and everything valid still imports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataelem import DataElement
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from app.db.database import Database
from app.db.models import Instance
from app.importer import ImportService
from app.importer.probe import RejectedFile, probe_file
from tests.support.synthetic_dicom import SyntheticStudy, make_instance


def _good(study: SyntheticStudy, **kw: object):  # type: ignore[no-untyped-def]
    return make_instance(study, generate_uid(), size=32, **kw)


def _write_generated(folder: Path) -> dict[str, str]:
    """Write the generated awkward files; returns name -> expected fragment of the reason ('' = imports)."""
    folder.mkdir()
    study = SyntheticStudy(patient_id="AWK")
    expected: dict[str, str] = {}

    def save(name: str, ds: pydicom.Dataset, reason: str) -> Path:
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        expected[name] = reason
        return path

    save("good.dcm", _good(study), "")
    full = save("truncated_pixels.dcm", _good(study), "truncated")
    data = full.read_bytes()
    full.write_bytes(data[: len(data) - 700])
    head = save("truncated_header.dcm", _good(study), "")
    head.write_bytes(head.read_bytes()[:200])  # cut inside the meta/header
    expected["truncated_header.dcm"] = "*"  # any clear reason

    no_pixels = _good(study)
    del no_pixels.PixelData
    save("no_pixel_data.dcm", no_pixels, "has no Pixel Data")

    short = _good(study)
    short.PixelData = short.PixelData[:100]
    save("short_pixel_data.dcm", short, "are needed for the image size")

    wrong_uid_vr = _good(study)
    wrong_uid_vr[0x0020000D] = DataElement(0x0020000D, "US", 7)  # Study Instance UID as an integer
    save("wrong_vr_uid.dcm", wrong_uid_vr, "wrong value representation: StudyInstanceUID has VR US")

    wrong_vr_optional = _good(study)
    wrong_vr_optional[0x00200013] = DataElement(0x00200013, "FD", 3.5)  # Instance Number as a double
    save("wrong_vr_optional.dcm", wrong_vr_optional, "")

    bad_is = _good(study)
    bad_is.InstanceNumber = "77777"
    patched = save("bad_integer_string.dcm", bad_is, "")
    raw = patched.read_bytes()
    assert raw.count(b"77777 ") == 1
    patched.write_bytes(raw.replace(b"77777 ", b"12abc "))  # pydicom refuses to write it, so patch bytes

    no_sop = _good(study)
    del no_sop.SOPInstanceUID
    save("missing_sop_uid.dcm", no_sop, "missing required SOPInstanceUID")

    (folder / "empty.dcm").write_bytes(b"")
    expected["empty.dcm"] = "empty file"
    (folder / "notes.txt").write_text("radiology notes, not an image\n")
    expected["notes.txt"] = "not a DICOM file"
    (folder / "random.bin").write_bytes(bytes(range(256)) * 40)
    expected["random.bin"] = "not a DICOM file"
    shutil.copy(get_testdata_file("JPEG2000.dcm"), folder / "jpeg2000_ok.dcm")
    expected["jpeg2000_ok.dcm"] = ""
    enc = (folder / "jpeg2000_ok.dcm").read_bytes()
    (folder / "jpeg2000_truncated.dcm").write_bytes(enc[: len(enc) - 50])
    expected["jpeg2000_truncated.dcm"] = "truncated: encapsulated Pixel Data"
    return expected


def test_generated_awkward_files_get_clear_reasons(db: Database, tmp_path: Path) -> None:
    expected = _write_generated(tmp_path / "awkward")
    report = ImportService(db).run([tmp_path / "awkward"])
    errors = {Path(i.path).name: i.reason for i in report.errors}
    warnings = {Path(i.path).name: i.reason for i in report.warnings}
    for name, fragment in expected.items():
        if fragment == "":
            assert name not in errors, (name, errors.get(name))
        elif fragment == "*":
            assert errors.get(name), name
        else:
            assert fragment in errors.get(name, ""), (name, errors.get(name))
    assert "InstanceNumber has VR FD" in warnings["wrong_vr_optional.dcm"]
    assert "InstanceNumber" in warnings["bad_integer_string.dcm"]
    assert report.imported == sum(1 for f in expected.values() if f == "")
    assert report.failed == len(expected) - report.imported
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == report.imported


def test_pydicom_test_corpus_imports_without_crashing(db: Database, tmp_path: Path) -> None:
    files = get_testdata_files()
    assert len(files) > 100
    report = ImportService(db, commit_every=25).run(files)
    assert not report.cancelled
    assert report.imported + report.duplicates + report.failed == report.total + len(
        [i for i in report.errors if i.reason.startswith(("referenced by", "unreadable DICOMDIR"))]
    )
    assert report.imported > 50
    errors = {Path(i.path).name: i.reason for i in report.errors}
    assert all(reason.strip() for reason in errors.values())
    assert "truncated" in errors["MR_truncated.dcm"]
    assert "not a DICOM file" in errors["README.txt"]
    assert "not a DICOM file" in errors["crayons.icc"]
    assert "DICOMDIR" in errors["DICOMDIR-bigEnd"]
    # Files without a preamble are kept, re-encoded as standard files the viewer can open.
    with db.session() as s:
        for inst in s.scalars(select(Instance)):
            path = db.store_path(inst.file_path)
            ds = pydicom.dcmread(path)  # no force: every stored file is a proper Part 10 file
            assert ds.SOPInstanceUID == inst.sop_instance_uid


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm",
                                  "SC_rgb_jpeg.dcm", "SC_rgb_rle_2frame.dcm"])
def test_known_good_files_probe_clean(name: str) -> None:
    header = probe_file(Path(get_testdata_file(name))).header
    assert header.sop_instance_uid and header.number_of_frames >= 1


def test_file_without_preamble_is_accepted_for_re_encoding() -> None:
    probed = probe_file(Path(get_testdata_file("ExplVR_BigEndNoMeta.dcm")))
    assert probed.rewrite is not None
    assert any("no DICOM preamble" in w for w in probed.header.warnings)


def test_probe_never_raises_anything_but_rejection(tmp_path: Path) -> None:
    """Every prefix length of a real file is either accepted or refused with a reason."""
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    for cut in range(0, len(data), 97):
        path = tmp_path / f"cut{cut}.dcm"
        path.write_bytes(data[:cut])
        try:
            probe_file(path)
        except RejectedFile as exc:
            assert str(exc)
