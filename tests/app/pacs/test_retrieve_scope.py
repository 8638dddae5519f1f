"""A PACS that answers a retrieval with something else than was asked: an instance whose data set is not
the one its C-STORE request (or WADO-RS part) announced, another patient's instance filed under the
requested study's UIDs, an instance of the study that was not requested. Each is refused with a failure
status, nothing of it is stored, and the retrieval says which instance and why.

The peers are real servers on loopback: a pynetdicom Q/R SCP (C-FIND, C-GET) whose C-GET handler sends
crafted sub-operations, and an HTTP server speaking QIDO-RS / WADO-RS multipart."""

from __future__ import annotations

import copy
import io
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)
from sqlalchemy import select

from app.db.models import Instance
from app.importer.integrity import part_sop_instance_uid
from app.pacs.nodes import PacsNode
from app.pacs.retrieve import RetrieveService
from app.pacs.sink import local_sop_uids
from tests.support.pacs_helpers import free_port
from tests.support.synthetic_dicom import SyntheticStudy, make_instance

SERIES = generate_uid()
STUDY = SyntheticStudy(patient_id="P-ONE", patient_name="ONE^PATIENT")
OTHER = SyntheticStudy(patient_id="P-TWO", patient_name="TWO^PATIENT")


def _listed() -> list[Dataset]:
    return [make_instance(STUDY, SERIES, instance_number=n, size=8) for n in (1, 2, 3)]


def _forged_copy(of: Dataset) -> Dataset:
    """Another patient's image carrying the SOP Instance UID of `of` (its own study and series)."""
    forged = make_instance(OTHER, generate_uid(), size=8, sop_uid=str(of.SOPInstanceUID))
    return forged


def _staging_left(database) -> list[str]:  # type: ignore[no-untyped-def]
    staging = database.store_dir / ".staging"  # app.importer.store.STAGING
    return sorted(p.name for p in staging.iterdir()) if staging.exists() else []


def _stored(database) -> set[str]:  # type: ignore[no-untyped-def]
    with database.session() as s:
        return set(s.scalars(select(Instance.sop_instance_uid)))


# ------------------------------------------------------------------------------------------ C-GET peer
class CraftedQrScp:
    """A pynetdicom Q/R SCP on loopback: C-FIND lists `listing`; C-GET sends `plan(identifier)`, a list of
    (data set, UID its C-STORE request announces). Records the C-STORE statuses RadStation answered."""

    def __init__(self, listing: list[Dataset]) -> None:
        self.listing = listing
        self.plan: Any = lambda _ident: []
        self.answers: list[tuple[str, int, str]] = []  # (announced UID, status, comment)
        self.port = free_port()
        ae = AE(ae_title="CRAFTED")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
        for cx in StoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ExplicitVRLittleEndian, scp_role=True, scu_role=False)
        self._server = ae.start_server(("127.0.0.1", self.port), block=False, evt_handlers=[
            (evt.EVT_C_FIND, self._find), (evt.EVT_C_GET, self._get), (evt.EVT_DIMSE_RECV, self._received)])

    def node(self) -> PacsNode:
        return PacsNode(name="crafted", protocol="dimse", ae_title="CRAFTED", host="127.0.0.1", port=self.port,
                        calling_ae="RADSTATION", retrieve="c-get", timeout=20)

    def close(self) -> None:
        self._server.shutdown()

    def _find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        for ds in self.listing:
            out = Dataset()
            out.QueryRetrieveLevel = "IMAGE"
            out.StudyInstanceUID = ds.StudyInstanceUID
            out.SeriesInstanceUID = ds.SeriesInstanceUID
            out.SOPInstanceUID = ds.SOPInstanceUID
            out.SOPClassUID = ds.SOPClassUID
            yield 0xFF00, out
        yield 0x0000, None

    def _get(self, event: Any) -> Iterator[Any]:
        plan = list(self.plan(event.identifier))
        announce = {str(ds.SOPInstanceUID): uid for ds, uid in plan if uid != ds.SOPInstanceUID}
        dimse = event.assoc.dimse
        original = dimse.send_msg

        def send_msg(primitive: Any, context_id: int) -> None:
            if isinstance(primitive, C_STORE) and str(primitive.AffectedSOPInstanceUID) in announce:
                primitive.AffectedSOPInstanceUID = announce[str(primitive.AffectedSOPInstanceUID)]
            original(primitive, context_id)

        dimse.send_msg = send_msg  # the request announces another instance than its data set
        yield len(plan)
        for ds, _uid in plan:
            yield 0xFF00, ds

    def _received(self, event: Any) -> None:
        message = event.message
        if type(message).__name__ == "C_STORE_RSP":
            cs = message.command_set
            self.answers.append((str(cs.AffectedSOPInstanceUID), int(cs.Status), str(cs.get("ErrorComment", ""))))


@pytest.fixture
def crafted_scp() -> Iterator[CraftedQrScp]:
    server = CraftedQrScp(_listed())
    try:
        yield server
    finally:
        server.close()


# pynetdicom answers a refused sub-operation with a failure status; with DCMTK's getscu (app.pacs.getscu) the
# PACS hears getscu's success and the file is refused after it was written: the same rows, the same report.
TRANSPORTS = [pytest.param("pynetdicom"),
              pytest.param("dcmtk", marks=pytest.mark.skipif(shutil.which("getscu") is None, reason="no getscu"))]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_c_get_refuses_a_data_set_unlike_its_request_and_another_patients_instance(crafted_scp, database,
                                                                                   transport) -> None:
    a, b, c = crafted_scp.listing
    swapped = make_instance(STUDY, SERIES, instance_number=9, size=8)  # same study, but not what is announced
    forged = _forged_copy(c)  # announced as c, and its data set says c: but it is another patient's study
    crafted_scp.plan = lambda _ident: [(a, a.SOPInstanceUID), (swapped, b.SOPInstanceUID), (forged, c.SOPInstanceUID)]

    result = RetrieveService(database, crafted_scp.node(), cget_transport=transport).retrieve_study(STUDY.study_uid)

    if transport == "pynetdicom":
        assert [(uid, status) for uid, status, _ in crafted_scp.answers] == [
            (a.SOPInstanceUID, 0x0000), (b.SOPInstanceUID, 0xA900), (c.SOPInstanceUID, 0x0124)]
        assert crafted_scp.answers[1][2] == "data set is not the instance announced"
        assert crafted_scp.answers[2][2] == "instance of another study than requested"
    else:
        assert [uid for uid, _, _ in crafted_scp.answers] == [a.SOPInstanceUID, b.SOPInstanceUID, c.SOPInstanceUID]
    assert _stored(database) == {a.SOPInstanceUID}  # nothing of the other patient, nothing mislabelled
    assert _staging_left(database) == []
    assert result.state == "partial" and result.imported == 1 and result.failed == 2
    assert "2 were refused on arrival" in result.message
    assert b.SOPInstanceUID in result.message and "not the one announced" in result.message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_c_get_refuses_an_instance_of_the_study_that_was_not_requested(crafted_scp, database, transport) -> None:
    """On resume only the missing instances are requested (IMAGE level): the study's other instances, and
    one of another series, are refused; what was asked for arrives."""
    a, b, c = crafted_scp.listing
    crafted_scp.plan = lambda _ident: [(a, a.SOPInstanceUID)]
    service = RetrieveService(database, crafted_scp.node(), cget_transport=transport)
    assert service.retrieve_study(STUDY.study_uid).state == "partial"
    assert _stored(database) == {a.SOPInstanceUID}

    seen: list[Dataset] = []
    stray_series = make_instance(STUDY, generate_uid(), instance_number=7, size=8)

    def plan(ident: Dataset) -> list[tuple[Dataset, str]]:
        seen.append(ident)
        return [(x, x.SOPInstanceUID) for x in (a, b, stray_series, c)]

    crafted_scp.answers.clear()
    crafted_scp.plan = plan
    result = service.retrieve_study(STUDY.study_uid)

    assert seen and seen[0].QueryRetrieveLevel == "IMAGE"
    assert set(seen[0].SOPInstanceUID) == {b.SOPInstanceUID, c.SOPInstanceUID}
    if transport == "pynetdicom":
        assert [status for _, status, _ in crafted_scp.answers] == [0x0124, 0x0000, 0x0124, 0x0000]
        assert crafted_scp.answers[0][2] == "instance not requested"
        assert crafted_scp.answers[2][2] == "instance of a series not requested"
    assert result.failed == 2 and result.imported == 2
    assert "not one of the instances requested" in result.first_refusal
    assert _stored(database) == {a.SOPInstanceUID, b.SOPInstanceUID, c.SOPInstanceUID}
    assert _staging_left(database) == []
    assert result.state == "done" and local_sop_uids(database, STUDY.study_uid) == _stored(database)


# ------------------------------------------------------------------------------------------ WADO-RS peer
def _part10(ds: Dataset, meta_uid: str | None = None) -> bytes:
    """Part 10 bytes; `meta_uid` makes the file meta name another instance than the data set is."""
    out = copy.deepcopy(ds)
    buf = io.BytesIO()
    if meta_uid is None:
        out.save_as(buf, enforce_file_format=True)
    else:  # written as it is (enforcing the format would make the meta agree with the data set)
        out.preamble = b"\x00" * 128
        out.file_meta.MediaStorageSOPInstanceUID = meta_uid
        out.save_as(buf, enforce_file_format=False)
        assert part_sop_instance_uid(buf.getvalue()) == meta_uid
    return buf.getvalue()


class CraftedDicomWeb:
    """QIDO-RS lists `listing`; WADO-RS of the series answers `parts` (Part 10 bytes) as multipart."""

    boundary = "crafted-boundary-1138"

    def __init__(self, listing: list[Dataset]) -> None:
        self.listing = listing
        self.parts: list[bytes] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                if path.endswith("/instances"):
                    body = json.dumps([{
                        "0020000D": {"vr": "UI", "Value": [str(d.StudyInstanceUID)]},
                        "0020000E": {"vr": "UI", "Value": [str(d.SeriesInstanceUID)]},
                        "00080018": {"vr": "UI", "Value": [str(d.SOPInstanceUID)]},
                        "00080016": {"vr": "UI", "Value": [str(d.SOPClassUID)]},
                    } for d in owner.listing]).encode()
                    kind = "application/dicom+json"
                else:
                    body = b"".join(b"--" + owner.boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n"
                                    + part + b"\r\n" for part in owner.parts) + b"--" + owner.boundary.encode() + b"--\r\n"
                    kind = f'multipart/related; type="application/dicom"; boundary={owner.boundary}'
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def node(self) -> PacsNode:
        return PacsNode(name="crafted-web", protocol="dicomweb",
                        url=f"http://127.0.0.1:{self._server.server_address[1]}/dicom-web", timeout=20)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def crafted_web() -> Iterator[CraftedDicomWeb]:
    server = CraftedDicomWeb(_listed())
    try:
        yield server
    finally:
        server.close()


def test_wado_rs_refuses_parts_unlike_their_file_meta_or_outside_the_study(crafted_web, database) -> None:
    a, b, c = crafted_web.listing
    swapped = make_instance(STUDY, SERIES, instance_number=9, size=8)
    crafted_web.parts = [
        _part10(a),
        _part10(swapped, meta_uid=b.SOPInstanceUID),  # the part's meta names b, its data set is another
        _part10(_forged_copy(c)),  # names c throughout, but another patient's study and series
    ]
    result = RetrieveService(database, crafted_web.node()).retrieve_study(STUDY.study_uid)

    assert _stored(database) == {a.SOPInstanceUID}
    assert _staging_left(database) == []
    assert result.state == "partial" and result.imported == 1 and result.failed == 2
    assert b.SOPInstanceUID in result.message and "not the one announced" in result.message
    stored = database.store_path(next(iter(_paths(database)))).read_bytes()
    assert dcmread(io.BytesIO(stored)).PatientID == "P-ONE"


def _paths(database) -> list[str]:  # type: ignore[no-untyped-def]
    with database.session() as s:
        return list(s.scalars(select(Instance.file_path)))


@pytest.mark.skipif(shutil.which("getscu") is None, reason="no getscu")
def test_auto_transport_fetches_what_getscu_left_undelivered_by_pynetdicom(crafted_scp, database) -> None:
    """A PACS that cannot send some instances the way getscu asks (a compressed-only archive, a storage class
    getscu does not propose) leaves them undelivered: under `auto` they are asked for again by pynetdicom in
    the same retrieve; with `dcmtk` chosen explicitly the retrieve ends partial, as the user asked."""
    a, b, c = crafted_scp.listing
    asked: list[Dataset] = []

    def plan(ident: Dataset) -> list[tuple[Dataset, str]]:
        asked.append(ident)
        if len(asked) == 1:  # the first association (getscu's) gets only a
            return [(a, a.SOPInstanceUID)]
        wanted = set(ident.SOPInstanceUID) if "SOPInstanceUID" in ident else {b.SOPInstanceUID, c.SOPInstanceUID}
        return [(x, x.SOPInstanceUID) for x in (b, c) if x.SOPInstanceUID in wanted]

    crafted_scp.plan = plan
    result = RetrieveService(database, crafted_scp.node(), cget_transport="auto").retrieve_study(STUDY.study_uid)
    assert len(asked) == 2 and asked[1].QueryRetrieveLevel == "IMAGE"
    assert set(asked[1].SOPInstanceUID) == {b.SOPInstanceUID, c.SOPInstanceUID}
    assert result.state == "done" and result.imported == 3 and result.failed == 0
    assert _stored(database) == {a.SOPInstanceUID, b.SOPInstanceUID, c.SOPInstanceUID}
    assert _staging_left(database) == []


@pytest.mark.skipif(shutil.which("getscu") is None, reason="no getscu")
def test_dcmtk_transport_chosen_explicitly_does_not_fall_back(crafted_scp, database) -> None:
    a, _b, _c = crafted_scp.listing
    asked: list[Dataset] = []
    crafted_scp.plan = lambda ident: asked.append(ident) or [(a, a.SOPInstanceUID)]
    result = RetrieveService(database, crafted_scp.node(), cget_transport="dcmtk").retrieve_study(STUDY.study_uid)
    assert len(asked) == 1 and result.state == "partial" and _stored(database) == {a.SOPInstanceUID}
