"""Import from folders, single files, DICOMDIRs and zips; dedup, cancel, and network datasets."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.fileset import FileSet
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from app.db.database import Database
from app.db.models import ImportBatch, ImportIssue, Instance, Patient, Series, Study
from app.importer import ImportService
from app.importer import service as service_module
from tests.support.synthetic_dicom import SyntheticStudy, make_instance, write_series


def _count(db: Database, model: type) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _assert_consistent(db: Database) -> None:
    """Every instance row points at a complete file in the store; no empty series or studies."""
    with db.session() as s:
        for inst in s.scalars(select(Instance)):
            path = db.store_path(inst.file_path)
            assert path.is_file(), inst.file_path
            assert path.stat().st_size == inst.file_size
            assert pydicom.dcmread(path).SOPInstanceUID == inst.sop_instance_uid
        for series in s.scalars(select(Series)):
            assert series.instances
        for study in s.scalars(select(Study)):
            assert study.series


def test_folder_import_copies_into_store_and_indexes(db: Database, tmp_path: Path) -> None:
    study = SyntheticStudy(patient_name="DOE^JANE", patient_id="P1")
    write_series(tmp_path / "in" / "a", study, 3, series_number=1)
    write_series(tmp_path / "in" / "b" / "deeper", study, 2, series_number=2)
    seen: list[tuple[int, int]] = []
    report = ImportService(db, commit_every=2).run([tmp_path / "in"], progress=lambda d, t: seen.append((d, t)))
    assert (report.imported, report.duplicates, report.failed, report.cancelled) == (5, 0, 0, False)
    assert report.study_uids == [study.study_uid]
    assert seen[-1] == (5, 5)
    assert _count(db, Patient) == 1 and _count(db, Study) == 1 and _count(db, Series) == 2
    with db.session() as s:
        inst = s.scalars(select(Instance)).first()
        assert inst is not None
        assert inst.file_path.startswith(f"{study.study_uid}/")
        assert len(inst.file_sha256) == 64 and inst.number_of_frames == 1
        assert s.scalar(select(Study.modalities)) == "CT"
    assert db.store_dir == db.store_dir.parent / "store"
    _assert_consistent(db)


def test_reimport_adds_nothing_and_reports_already_present(db: Database, tmp_path: Path) -> None:
    paths = write_series(tmp_path / "in", SyntheticStudy(), 4)
    first = ImportService(db).run([tmp_path / "in"])
    assert first.imported == 4
    again = ImportService(db).run([tmp_path / "in", paths[0]])  # the same file twice is still one file
    assert (again.imported, again.duplicates, again.failed, again.total) == (0, 4, 0, 4)
    assert {i.reason for i in again.issues} == {"already present"}
    assert _count(db, Instance) == 4
    with db.session() as s:
        batches = s.scalars(select(ImportBatch).order_by(ImportBatch.id)).all()
        assert [(b.imported, b.duplicates) for b in batches] == [(4, 0), (0, 4)]
        assert all(b.finished_at is not None for b in batches)
        assert s.scalar(select(func.count()).select_from(ImportIssue)) == 4


def test_reimport_puts_back_files_evicted_from_the_store(db: Database, tmp_path: Path) -> None:
    """Rows whose files were evicted from this workstation's cache: importing the same files again (a CD,
    a push) puts them back where the rows say, no new rows; other bytes under the same UID are a conflict."""
    study = SyntheticStudy()
    paths = write_series(tmp_path / "in", study, 3)
    assert ImportService(db).run([tmp_path / "in"]).imported == 3
    with db.session() as s:
        stored = sorted(s.execute(select(Instance.file_path, Instance.file_sha256)).all())
    for rel, _sha in stored[:2]:
        db.store_path(rel).unlink()
    again = ImportService(db).run([tmp_path / "in"])
    assert (again.imported, again.duplicates, again.failed) == (0, 3, 0)
    assert sorted(i.reason for i in again.issues) == ["already in the database; its missing file was put back"] * 2 \
        + ["already present"]
    with db.session() as s:
        assert sorted(s.execute(select(Instance.file_path, Instance.file_sha256)).all()) == stored
    _assert_consistent(db)
    # not the same bytes: never put in place of the evicted file (kept apart as a conflict, as always)
    db.store_path(stored[0][0]).unlink()
    with db.session() as s:
        sop = s.scalar(select(Instance.sop_instance_uid).where(Instance.file_path == stored[0][0]))
    ds = next(d for d in map(pydicom.dcmread, paths) if d.SOPInstanceUID == sop)
    ds.PatientName = "SOMEONE^ELSE"
    forged = tmp_path / "forged.dcm"
    ds.save_as(forged, enforce_file_format=True)
    result = ImportService(db).run([forged])
    assert not db.store_path(stored[0][0]).exists()
    assert result.failed == 0 and result.imported == 1  # a conflict: kept beside it, the study flagged


def test_single_file_import(db: Database, tmp_path: Path) -> None:
    paths = write_series(tmp_path, SyntheticStudy(), 3)
    report = ImportService(db).run([paths[1]])
    assert (report.imported, report.total) == (1, 1)


def test_missing_source_is_reported(db: Database, tmp_path: Path) -> None:
    report = ImportService(db).run([tmp_path / "nope"])
    assert report.failed == 1 and report.issues[0].reason == "no such file or folder"


def test_dicomdir_is_followed(db: Database, tmp_path: Path) -> None:
    study = SyntheticStudy(patient_id="DD1")
    series_uid = generate_uid()
    fs = FileSet()
    for n in range(1, 4):
        fs.add(make_instance(study, series_uid, instance_number=n))
    media = tmp_path / "media"
    fs.write(media)
    assert (media / "DICOMDIR").exists()
    # Import the DICOMDIR file itself: its referenced files (named without .dcm) are imported.
    report = ImportService(db).run([media / "DICOMDIR"])
    assert (report.imported, report.failed) == (3, 0)
    # The whole folder: the DICOMDIR and the walk reach the same files, each counted once.
    again = ImportService(db).run([media])
    assert (again.total, again.duplicates, again.imported) == (3, 3, 0)


def test_dicomdir_with_missing_reference_reports_it(db: Database, tmp_path: Path) -> None:
    study = SyntheticStudy()
    series_uid = generate_uid()
    fs = FileSet()
    for n in range(1, 3):
        fs.add(make_instance(study, series_uid, instance_number=n))
    fs.write(tmp_path / "media")
    victim = next(p for p in (tmp_path / "media").rglob("*") if p.is_file() and p.name != "DICOMDIR")
    victim.unlink()
    report = ImportService(db).run([tmp_path / "media" / "DICOMDIR"])
    assert report.imported == 1
    assert any("referenced by the DICOMDIR but missing" in i.reason for i in report.errors)


def test_zip_is_extracted_safely(db: Database, tmp_path: Path) -> None:
    paths = write_series(tmp_path / "src", SyntheticStudy(), 3)
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in paths:
            zf.write(p, f"exam/{p.name}")
        zf.writestr("../../escape.dcm", paths[0].read_bytes())
        zf.writestr("/abs/evil.dcm", paths[0].read_bytes())
        zf.writestr("notes.txt", "hello")
    report = ImportService(db).run([archive])
    assert report.imported == 3
    reasons = {i.path.split("!/")[-1]: i.reason for i in report.errors}
    assert "'..'" in reasons["../../escape.dcm"]
    assert "absolute path" in reasons["/abs/evil.dcm"]
    assert "not a DICOM file" in reasons["notes.txt"]
    assert not (tmp_path / "escape.dcm").exists() and not list(tmp_path.parent.glob("escape.dcm"))
    assert not any((db.store_dir.parent / "import-work").iterdir())  # extraction folder cleaned up
    _assert_consistent(db)


def test_cancel_midway_leaves_consistent_database(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_series(tmp_path / "in", SyntheticStudy(), 30)
    cancel = threading.Event()
    probed: list[Path] = []
    real_probe = service_module.probe_file

    def probe_then_cancel(path):  # the user presses Cancel while the 7th file is read: no timing involved
        probed.append(path)
        if len(probed) == 7:
            cancel.set()
        return real_probe(path)

    monkeypatch.setattr(service_module, "probe_file", probe_then_cancel)
    report = ImportService(db, commit_every=5).run([tmp_path / "in"], cancel=cancel)
    monkeypatch.setattr(service_module, "probe_file", real_probe)
    assert report.cancelled
    assert 0 < report.imported < 30
    assert report.study_uids  # what did land is still reported, so the worklist can show it
    assert _count(db, Instance) == report.imported
    _assert_consistent(db)
    with db.session() as s:
        assert s.scalar(select(ImportBatch.cancelled)) is True
    rest = ImportService(db).run([tmp_path / "in"])  # running it again finishes the job
    assert (rest.imported + rest.duplicates, rest.duplicates) == (30, report.imported)
    assert _count(db, Instance) == 30


def test_network_dataset_import(db: Database) -> None:
    study = SyntheticStudy(patient_id="NET1")
    ds = make_instance(study, generate_uid())
    del ds.file_meta  # as handed over by some peers: no file meta at all
    service = ImportService(db)
    outcome = service.import_dataset(ds)
    assert outcome.status == "imported" and outcome.study_uid == study.study_uid
    assert service.import_dataset(ds).status == "duplicate"
    broken = make_instance(study, generate_uid())
    del broken.StudyInstanceUID
    bad = service.import_dataset(broken)
    assert bad.status == "failed" and "StudyInstanceUID" in bad.reason
    _assert_consistent(db)


def test_network_imports_from_threads_do_not_collide(db: Database) -> None:
    study = SyntheticStudy(patient_id="THREADS")
    series_uid = generate_uid()
    datasets = [make_instance(study, series_uid, instance_number=n) for n in range(12)]
    service = ImportService(db)
    outcomes: list[str] = []

    def worker(items: list) -> None:
        outcomes.extend(service.import_dataset(ds).status for ds in items)

    threads = [threading.Thread(target=worker, args=(datasets[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("imported") == 12
    assert _count(db, Study) == 1 and _count(db, Series) == 1 and _count(db, Instance) == 12


@pytest.mark.parametrize("commit_every", [1, 1000])
def test_same_sop_uid_twice_in_one_run_is_a_duplicate(db: Database, tmp_path: Path, commit_every: int) -> None:
    ds = make_instance(SyntheticStudy(), generate_uid())
    ds.save_as(tmp_path / "a.dcm", enforce_file_format=True)
    ds.save_as(tmp_path / "b.dcm", enforce_file_format=True)
    report = ImportService(db, commit_every=commit_every).run([tmp_path])
    assert (report.imported, report.duplicates) == (1, 1)


def test_series_claimed_by_two_studies_is_refused(db: Database, tmp_path: Path) -> None:
    series_uid = generate_uid()
    make_instance(SyntheticStudy(), series_uid).save_as(tmp_path / "a.dcm", enforce_file_format=True)
    make_instance(SyntheticStudy(), series_uid).save_as(tmp_path / "b.dcm", enforce_file_format=True)
    report = ImportService(db).run([tmp_path / "a.dcm", tmp_path / "b.dcm"])
    assert (report.imported, report.failed) == (1, 1)
    assert "already belongs to study" in report.errors[0].reason
    _assert_consistent(db)


def test_non_image_objects_import_but_stay_out_of_the_viewer_ref(db: Database) -> None:
    from pydicom.data import get_testdata_file

    from app.db.queries import study_ref

    report = ImportService(db).run([get_testdata_file("rtplan.dcm")])
    assert report.imported == 1
    with db.session() as s:
        uid = s.scalar(select(Study.study_uid))
        assert uid is not None
        assert study_ref(s, uid).series == ()
        assert len(study_ref(s, uid, images_only=False).series) == 1


def test_store_write_failure_is_reported_and_leaves_no_empty_rows(db: Database, tmp_path: Path) -> None:
    study = SyntheticStudy()
    write_series(tmp_path / "in", study, 2)
    db.store_dir.mkdir(parents=True, exist_ok=True)
    (db.store_dir / study.study_uid).write_text("a file where the study folder should be")
    report = ImportService(db).run([tmp_path / "in"])
    assert (report.imported, report.failed) == (0, 2)
    assert all("cannot write to the store" in i.reason for i in report.errors)
    assert _count(db, Study) == 0 and _count(db, Series) == 0 and _count(db, Patient) == 0


def test_uid_that_looks_like_a_path_cannot_escape_the_store(db: Database, tmp_path: Path) -> None:
    ds = make_instance(SyntheticStudy(), generate_uid(), sop_uid="1.2.34")
    ds.save_as(tmp_path / "evil.dcm", enforce_file_format=True)
    raw = (tmp_path / "evil.dcm").read_bytes()
    (tmp_path / "evil.dcm").write_bytes(raw.replace(b"1.2.34", b"../../"))  # pydicom would refuse to write it
    report = ImportService(db).run([tmp_path / "evil.dcm"])
    assert report.imported == 1
    assert any("not a valid DICOM UID" in w.reason for w in report.warnings)
    with db.session() as s:
        inst = s.scalars(select(Instance)).one()
        assert inst.sop_instance_uid == "../../"
        stored = db.store_path(inst.file_path).resolve()
    assert stored.is_relative_to(db.store_dir.resolve()) and stored.name.startswith("x")


def test_files_placed_before_a_failed_commit_are_removed(db: Database, tmp_path: Path) -> None:
    """The database refuses the batch after its files were placed in the store (a real refusal: a trigger
    aborting the insert, as a full disk or a broken constraint would): nothing is left in the store for
    rows that do not exist, the failure is reported per file, and the same import succeeds afterwards."""
    from sqlalchemy import text

    study = SyntheticStudy()
    write_series(tmp_path / "in", study, 3)
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER refuse_instances BEFORE INSERT ON instance "
                          "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"))
    report = ImportService(db).run([tmp_path / "in"])
    assert (report.imported, report.failed) == (0, 3)
    assert all("refused by the test trigger" in i.reason for i in report.errors)
    leftover = [p for p in db.store_dir.rglob("*") if p.is_file()] if db.store_dir.exists() else []
    assert leftover == [] and _count(db, Instance) == 0 and _count(db, Study) == 0
    with db.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse_instances"))
    assert ImportService(db).run([tmp_path / "in"]).imported == 3
    _assert_consistent(db)
