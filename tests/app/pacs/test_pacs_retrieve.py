"""Retrieval into a temp database by C-GET, C-MOVE (to our own SCP) and WADO-RS: complete, resumed,
cancelled, and partial when the importer refuses an instance."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from app.db.database import Database
from app.db.models import Instance
from app.importer import ImportService
from app.pacs.cancel import CancelToken
from app.pacs.errors import PacsConfigError, PartialRetrieveError, RetrieveCancelled
from app.pacs.query import QueryFilter
from app.pacs.retrieve import RetrieveService, StudyProgress
from app.pacs.scp import StorageScp
from app.pacs.sink import ImportSink, local_sop_uids
from tests.support.pacs_helpers import dimse_node, scp_config, web_node

pytestmark = pytest.mark.orthanc

METHODS = ["c-get", "c-move", "wado-rs"]


def _service(orthanc, database, method: str) -> RetrieveService:
    node = web_node(orthanc) if method == "wado-rs" else dimse_node(orthanc, method)
    return RetrieveService(database, node, scp_config=scp_config(orthanc))


def _assert_consistent(database) -> None:
    """Every Instance row points at a complete, readable file in the store."""
    with database.session() as session:
        rows = session.execute(select(Instance.sop_instance_uid, Instance.file_path)).all()
    for sop, rel in rows:
        path: Path = database.store_path(rel)
        assert path.is_file(), f"{sop} has no file"
        assert dcmread(path).SOPInstanceUID == sop


@pytest.mark.parametrize("method", METHODS)
def test_retrieve_whole_study(orthanc, pacs_studies, database, method) -> None:
    study = pacs_studies.current_ct
    uid = study[0].StudyInstanceUID
    seen: list[StudyProgress] = []
    result = _service(orthanc, database, method).retrieve_study(uid, seen.append)
    assert result.state == "done", result.message
    assert (result.expected, result.imported, result.already_present) == (6, 6, 0)
    assert local_sop_uids(database, uid) == {ds.SOPInstanceUID for ds in study}
    assert [p.state for p in seen][:2] == ["listing", "running"] and seen[-1].state == "done"
    assert max(p.done for p in seen) == 6 and seen[-1].total == 6
    _assert_consistent(database)
    stored = dcmread(database.store_path(_path_of(database, study[0].SOPInstanceUID)))
    assert stored.pixel_array.tobytes() == study[0].PixelData  # the pixels survived the round trip


def _path_of(database, sop_uid: str) -> str:
    with database.session() as session:
        return session.scalar(select(Instance.file_path).where(Instance.sop_instance_uid == sop_uid))


@pytest.mark.parametrize("method", METHODS)
def test_resume_fetches_only_what_is_missing(orthanc, pacs_studies, database, method) -> None:
    study = pacs_studies.current_ct  # 2 series x 3: one series half present, the other absent
    for ds in (study[0], study[1]):
        assert ImportService(database).import_dataset(ds).status == "imported"
    result = _service(orthanc, database, method).retrieve_study(study[0].StudyInstanceUID)
    assert result.state == "done", result.message
    assert (result.already_present, result.imported, result.duplicates) == (2, 4, 0)
    again = _service(orthanc, database, method).retrieve_study(study[0].StudyInstanceUID)
    assert again.state == "done" and again.imported == 0 and "already in the database" in again.message


@pytest.mark.parametrize("method", METHODS)
def test_resume_fetches_again_what_was_evicted_from_this_workstation(orthanc, pacs_studies, database,
                                                                      method) -> None:
    """Rows in the database are not files on disk: a study (or one file) evicted from the local cache is
    fetched again, put back where its rows say, the very bytes recorded at import, with no new rows."""
    from app.archive.cache import StudyCache

    study = pacs_studies.current_ct
    uid = study[0].StudyInstanceUID
    assert _service(orthanc, database, method).retrieve_study(uid).state == "done"
    with database.session() as session:
        rows = dict(session.execute(select(Instance.sop_instance_uid, Instance.file_sha256)).all())
    assert [s.study_uid for s in StudyCache(database.store_dir, limit_bytes=1).evict()] == [uid]
    assert local_sop_uids(database, uid) == set()  # the rows are there, the files are not
    result = _service(orthanc, database, method).retrieve_study(uid)
    assert result.state == "done", result.message
    assert result.already_present == 0 and result.imported + result.duplicates == len(study)
    assert local_sop_uids(database, uid) == {ds.SOPInstanceUID for ds in study}
    _assert_consistent(database)
    with database.session() as session:
        assert dict(session.execute(select(Instance.sop_instance_uid, Instance.file_sha256)).all()) == rows
    for sop, sha in rows.items():
        assert hashlib.sha256(database.store_path(_path_of(database, sop)).read_bytes()).hexdigest() == sha

    gone = database.store_path(_path_of(database, study[4].SOPInstanceUID))  # one file lost
    gone.unlink()
    again = _service(orthanc, database, method).retrieve_study(uid)
    assert again.state == "done" and again.already_present == len(study) - 1 and gone.is_file()
    _assert_consistent(database)


@pytest.mark.parametrize("method", METHODS)
def test_cancel_keeps_what_arrived_and_a_second_run_completes(orthanc, pacs_studies, database, method) -> None:
    uid = pacs_studies.current_ct[0].StudyInstanceUID
    cancel = CancelToken()

    def progress(p: StudyProgress) -> None:
        if p.state == "running" and p.done >= 1:
            cancel.cancel()

    service = _service(orthanc, database, method)
    # C-GET imports inside the C-STORE handler here, so the cancel lands between two sub-operations and
    # the next one is refused; with the import queue a small study can arrive whole before the first
    # import reports progress, which made this test depend on timing.
    service.import_queue_depth = 0
    with pytest.raises(RetrieveCancelled):
        service.retrieve_study(uid, progress, cancel)
    kept = local_sop_uids(database, uid)
    assert 1 <= len(kept) < 6
    _assert_consistent(database)
    result = service.retrieve_study(uid)
    assert result.state == "done" and result.already_present == len(kept) and result.imported == 6 - len(kept)


def test_batch_reports_each_study_and_a_refused_instance_as_partial(orthanc, pacs_studies, database) -> None:
    # A local series UID that the PACS has under another study: the importer refuses the conflicting
    # instances exactly as it would refuse such files, and the retrieval says what is missing and why.
    conflicting = copy.deepcopy(pacs_studies.prior_ct[0])
    conflicting.StudyInstanceUID = generate_uid()
    conflicting.SOPInstanceUID = conflicting.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    assert ImportService(database).import_dataset(conflicting).status == "imported"

    uids = [pacs_studies.prior_ct[0].StudyInstanceUID, pacs_studies.other_cr[0].StudyInstanceUID]
    results = _service(orthanc, database, "c-get").retrieve_studies(uids)
    assert [r.state for r in results] == ["partial", "done"], results[0].message
    partial = results[0]
    assert isinstance(partial.error, PartialRetrieveError)
    assert partial.failed == 3 and "were refused on arrival" in partial.message
    assert "0 of 3 instances" in partial.message
    _assert_consistent(database)
    with database.session() as session:
        assert session.scalar(select(func.count(Instance.id))) == 2  # the conflicting one + the CR


DEMO = Path(__file__).resolve().parents[3] / "resources" / "demo"


@pytest.mark.parametrize("method", METHODS)
def test_demo_studies_round_trip_through_the_pacs(orthanc, database, method) -> None:
    """The shipped demo studies (3 radiographs + a 48-slice CT) stored in Orthanc, found, retrieved."""
    files = [p for p in DEMO.rglob("*") if p.is_file() and p.parent != DEMO]
    if not files:
        pytest.skip("resources/demo has no studies")
    sops: dict[str, set[str]] = {}
    for path in files:
        ds = dcmread(path, stop_before_pixels=True)
        sops.setdefault(ds.StudyInstanceUID, set()).add(ds.SOPInstanceUID)
        orthanc.upload(path)
    node = web_node(orthanc) if method == "wado-rs" else dimse_node(orthanc, method)
    found = RetrieveService(database, node).client.find_studies(QueryFilter(patient_name="DEMO"))
    assert {s.study_uid for s in found} == set(sops)
    results = _service(orthanc, database, method).retrieve_studies([s.study_uid for s in found])
    assert all(r.state == "done" for r in results), [r.message for r in results]
    for study_uid, expected in sops.items():
        assert local_sop_uids(database, study_uid) == expected
    _assert_consistent(database)


def test_c_move_into_the_running_application_scp(orthanc, pacs_studies, database, tmp_path) -> None:
    """The app's own SCP (started from settings) receives the move and stays up afterwards."""
    with StorageScp(scp_config(orthanc), ImportSink(database)) as scp:
        service = RetrieveService(database, dimse_node(orthanc, "c-move"), scp=scp)
        result = service.retrieve_study(pacs_studies.other_cr[0].StudyInstanceUID)
        assert result.state == "done" and result.imported == 1 and scp.running and scp.received == 1
        other = Database.open(f"sqlite:///{tmp_path / 'other.db'}", store_dir=tmp_path / "other")
        try:
            with pytest.raises(PacsConfigError, match="another database"):
                RetrieveService(other, dimse_node(orthanc, "c-move"), scp=scp)
        finally:
            other.dispose()
