"""Failures give one clear PacsError and leave the database consistent: wrong AE, closed port, silent
peer, unknown move destination, HTTP errors, and a PACS killed in the middle of a transfer."""

from __future__ import annotations

import socket
import threading

import pytest
from pydicom import dcmread
from sqlalchemy import select

from app.db.models import Instance
from app.pacs.clients import check_node, client_for
from app.pacs.errors import (
    AssociationRejectedError,
    PacsAuthError,
    PacsConnectionError,
    PacsRemoteError,
    PacsTimeoutError,
)
from app.pacs.nodes import PacsNode
from app.pacs.query import QueryFilter
from app.pacs.retrieve import RetrieveService, StudyProgress
from app.pacs.sink import local_sop_uids
from tests.support.orthanc_fixture import make_study, start_orthanc
from tests.support.pacs_helpers import dimse_node, free_port, scp_config, web_node

pytestmark = pytest.mark.orthanc


def test_wrong_called_ae_is_rejected_with_the_reason(orthanc) -> None:
    node = dimse_node(orthanc, ae_title="NOT_ORTHANC")
    with pytest.raises(AssociationRejectedError, match="Called AE title not recognised.*'NOT_ORTHANC'"):
        check_node(node)


def test_closed_port_says_nothing_listens() -> None:
    port = free_port()
    node = PacsNode("gone", ae_title="PACS", host="127.0.0.1", port=port, timeout=5)
    with pytest.raises(PacsConnectionError, match=f"nothing is listening at 127.0.0.1:{port}"):
        check_node(node)
    web = PacsNode("gone-web", protocol="dicomweb", url=f"http://127.0.0.1:{port}/dicom-web", timeout=5)
    with pytest.raises(PacsConnectionError, match="cannot reach gone-web"):
        client_for(web).find_studies(QueryFilter())


def test_a_peer_that_never_answers_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # accepts TCP (kernel backlog) but never speaks DICOM or HTTP
        port = listener.getsockname()[1]
        node = PacsNode("mute", ae_title="PACS", host="127.0.0.1", port=port, timeout=1)
        with pytest.raises(PacsTimeoutError, match="did not answer the association request within 1 s"):
            check_node(node)
        web = PacsNode("mute-web", protocol="dicomweb", url=f"http://127.0.0.1:{port}", timeout=1)
        with pytest.raises(PacsTimeoutError, match="did not answer the search within 1 s"):
            check_node(web)


def test_wrong_dicomweb_path_is_a_404_message(orthanc) -> None:
    with pytest.raises(PacsRemoteError, match="HTTP 404"):
        check_node(web_node(orthanc, url=orthanc.http_url + "/no-such-service"))


def test_move_to_a_destination_the_pacs_does_not_know(orthanc, pacs_studies, database) -> None:
    node = dimse_node(orthanc, "c-move", move_destination="UNKNOWN_AE")
    result = RetrieveService(database, node, scp_config=scp_config(orthanc)).retrieve_study_safely(
        pacs_studies.other_cr[0].StudyInstanceUID)
    assert result.state == "failed"
    assert "move destination 'UNKNOWN_AE'" in result.message and "list of DICOM peers" in result.message
    assert local_sop_uids(database, pacs_studies.other_cr[0].StudyInstanceUID) == set()


@pytest.fixture
def doomed_orthanc(tmp_path):
    """A private Orthanc holding a 2 x 20-slice study, killed by the test.

    A WADO-RS series of this size sits wholly in the loopback socket buffers once sent, so for WADO the
    kill is noticed at the next series' request; DIMSE notices it within the C-GET."""
    server = start_orthanc(tmp_path / "doomed")
    study = make_study("PAT-K", "KILL^ME", n_series=2, n_instances=20, rows=64, columns=64, seed=9)
    for ds in study:
        server.upload(ds)
    try:
        yield server, study
    finally:
        server.stop(kill=True)


@pytest.mark.parametrize("method", ["c-get", "wado-rs"])
def test_pacs_killed_mid_transfer_leaves_a_consistent_resumable_database(doomed_orthanc, database, method) -> None:
    server, study = doomed_orthanc
    uid = study[0].StudyInstanceUID
    node = web_node(server) if method == "wado-rs" else dimse_node(server, method)
    killed = threading.Event()

    def progress(p: StudyProgress) -> None:
        if p.state == "running" and p.done >= 5 and not killed.is_set():
            killed.set()
            server.stop(kill=True)  # SIGKILL: the PACS vanishes without closing anything

    result = RetrieveService(database, node).retrieve_study_safely(uid, progress)
    assert killed.is_set()
    assert result.state == "failed" and isinstance(result.error, PacsConnectionError), result.message
    assert "retrieve again to resume" in result.message
    have = local_sop_uids(database, uid)
    assert 5 <= len(have) < 40
    with database.session() as session:
        rows = session.execute(select(Instance.sop_instance_uid, Instance.file_path)).all()
    assert {sop for sop, _ in rows} == have
    for sop, rel in rows:
        assert dcmread(database.store_path(rel)).SOPInstanceUID == sop  # no half-written file is listed

    # The PACS comes back (same storage, new ports): the next retrieve fetches only what is missing.
    revived = start_orthanc(server.workdir)
    try:
        node = web_node(revived) if method == "wado-rs" else dimse_node(revived, method)
        again = RetrieveService(database, node).retrieve_study(uid)
        assert again.state == "done" and again.already_present == len(have) and again.imported == 40 - len(have)
    finally:
        revived.stop(kill=True)


def test_dicomweb_basic_auth_and_refused_credentials(tmp_path) -> None:
    server = start_orthanc(tmp_path / "locked", extra_config={
        "AuthenticationEnabled": True, "RegisteredUsers": {"reader": "s3cret"}})
    try:
        # plain http on loopback: the user confirmed sending the password unencrypted
        base = PacsNode("locked", protocol="dicomweb", url=server.dicomweb_url, timeout=5,
                        allow_insecure_credentials=True)
        assert "succeeded" in check_node(base.with_changes(auth="basic", username="reader", password="s3cret"))
        with pytest.raises(PacsAuthError, match="refused the credentials.*HTTP 401"):
            check_node(base.with_changes(auth="basic", username="reader", password="wrong"))
        with pytest.raises(PacsAuthError, match="HTTP 401"):
            check_node(base)
        with pytest.raises(PacsAuthError, match="HTTP 401"):
            check_node(base.with_changes(auth="bearer", token="not-a-token"))
    finally:
        server.stop(kill=True)


def test_pacs_side_refusal_of_a_query_is_reported(tmp_path) -> None:
    """An archive that answers C-ECHO but refuses C-FIND/C-GET to unknown AEs (Orthanc aborts)."""
    server = start_orthanc(tmp_path / "strict", extra_config={
        "DicomAlwaysAllowFind": False, "DicomAlwaysAllowGet": False, "DicomAlwaysAllowMove": False})
    try:
        node = dimse_node(server, calling_ae="STRANGER")
        assert "succeeded" in check_node(node)
        with pytest.raises(PacsRemoteError, match="aborted the association during C-FIND.*'STRANGER'"):
            client_for(node).find_studies(QueryFilter())
    finally:
        server.stop(kill=True)
