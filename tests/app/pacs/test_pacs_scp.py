"""RadStation's Storage SCP: pushes land in the database through the import path; strangers are refused."""

from __future__ import annotations

import copy

import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE, StoragePresentationContexts

from app.pacs.dimse import DimseClient
from app.pacs.errors import AssociationRejectedError, PacsError
from app.pacs.nodes import PacsNode, StorageScpConfig
from app.pacs.scp import StorageScp, start_configured_scp
from app.pacs.sink import ImportSink, local_sop_uids
from app.settings import Settings
from tests.support.pacs_helpers import free_port


def _push(port: int, datasets, calling: str = "CT1", called: str = "RADSTATION") -> list[int]:
    ae = AE(ae_title=calling)
    ae.requested_contexts = StoragePresentationContexts[:100]
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        return []
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


@pytest.fixture
def scp(database):
    config = StorageScpConfig(enabled=True, ae_title="RADSTATION", port=free_port(), bind_address="127.0.0.1",
                              accepted_calling_aes=("CT1", "ORTHANC"))
    with StorageScp(config, ImportSink(database)) as server:
        yield server


def test_push_is_imported_and_duplicates_and_bad_instances_are_handled(scp, database, pacs_catalog) -> None:
    study = pacs_catalog.current_ct
    assert _push(scp.port, study) == [0] * 6
    assert local_sop_uids(database, study[0].StudyInstanceUID) == {ds.SOPInstanceUID for ds in study}
    assert _push(scp.port, study[:1]) == [0]  # a duplicate is acknowledged and not stored twice
    assert scp.sink.counts["duplicate"] == 1
    bad = copy.deepcopy(study[1])
    bad.SOPInstanceUID = bad.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    del bad.StudyInstanceUID  # the importer refuses an instance without a study
    assert _push(scp.port, [bad]) == [0xC000]
    assert scp.failed == 1 and scp.received == 7


def test_unlisted_calling_ae_and_wrong_called_ae_are_rejected(scp, pacs_catalog) -> None:
    assert _push(scp.port, pacs_catalog.other_cr, calling="STRANGER") == []
    assert _push(scp.port, pacs_catalog.other_cr, called="SOMEONE") == []
    node = PacsNode("self", ae_title="RADSTATION", host="127.0.0.1", port=scp.port, calling_ae="STRANGER")
    with pytest.raises(AssociationRejectedError, match="Calling AE title not recognised"):
        DimseClient(node).echo()
    assert "succeeded" in DimseClient(node.with_changes(calling_ae="CT1")).echo()


def test_port_in_use_is_a_clear_error(scp, database) -> None:
    with pytest.raises(PacsError, match=f"cannot listen on 127.0.0.1:{scp.port}"):
        StorageScp(StorageScpConfig(port=scp.port, bind_address="127.0.0.1"), ImportSink(database)).start()


@pytest.mark.orthanc
def test_orthanc_pushes_into_the_scp(orthanc, pacs_studies, database) -> None:
    port = free_port()
    orthanc.add_modality("radstation", "RADSTATION", port)
    config = StorageScpConfig(enabled=True, ae_title="RADSTATION", port=port, bind_address="127.0.0.1",
                              accepted_calling_aes=(orthanc.aet,))
    study_uid = pacs_studies.prior_ct[0].StudyInstanceUID
    orthanc_id = next(s for s in orthanc.rest("GET", "/studies?expand")
                      if s["MainDicomTags"]["StudyInstanceUID"] == study_uid)["ID"]
    with StorageScp(config, ImportSink(database)):
        orthanc.rest("POST", "/modalities/radstation/store", {"Resources": [orthanc_id], "Synchronous": True})
    assert local_sop_uids(database, study_uid) == {ds.SOPInstanceUID for ds in pacs_studies.prior_ct}


def test_configured_scp_is_off_by_default_and_starts_when_enabled(tmp_path, database) -> None:
    settings = Settings(tmp_path / "settings.json")
    assert start_configured_scp(database, settings) is None
    port = free_port()
    StorageScpConfig(enabled=True, ae_title="RADSTATION", port=port, bind_address="127.0.0.1").to_settings(settings)
    scp = start_configured_scp(database, settings)
    try:
        assert scp is not None and scp.running and scp.port == port
        node = PacsNode("self", ae_title="RADSTATION", host="127.0.0.1", port=port, calling_ae="ANYONE")
        with pytest.raises(AssociationRejectedError):  # default-deny: no configured peer, nobody gets in
            DimseClient(node).echo()
    finally:
        scp.stop()
