"""Outbox: send the signed SR / encapsulated PDF to a real Orthanc (C-STORE and STOW-RS), fetch it back,
retries with back-off, nothing marked sent without confirmation."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from pydicom import dcmread

from app.pacs.nodes import PacsNode
from app.reports import audit
from app.reports.export_encapsulated import extract_pdf
from app.reports.export_sr import sr_content, verify_sr
from app.reports.outbox import Outbox
from tests.support.reports_testing import PASSWORD, STUDY_UID, free_port

pytestmark = pytest.mark.orthanc


def _signed(env, user):
    v = env.service.open_or_create(STUDY_UID, user)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": "Round trip through the PACS: ✓."}, user)
    return env.service.sign(v.id, user, PASSWORD)


def _fetch(orthanc, sop_uid: str) -> bytes:
    hits = orthanc.rest("POST", "/tools/lookup", sop_uid)
    assert hits, f"{sop_uid} is not in Orthanc"
    return orthanc.rest("GET", f"/instances/{hits[0]['ID']}/file")


def test_round_trip_through_orthanc_by_cstore_and_stow(env, radiologist, orthanc):
    orthanc.clear()  # report UIDs are deterministic: an earlier run's copy (other database) must not answer
    v = _signed(env, radiologist)
    nodes = {
        "pacs-dimse": PacsNode(name="pacs-dimse", protocol="dimse", ae_title=orthanc.aet, host="127.0.0.1",
                               port=orthanc.dicom_port, calling_ae="RADREPORT", timeout=20),
        "pacs-web": PacsNode(name="pacs-web", protocol="dicomweb", url=orthanc.dicomweb_url, timeout=20),
    }
    box = Outbox(env.service, nodes=nodes.__getitem__)
    sr_id, = box.enqueue(v.id, "pacs-dimse", radiologist, documents=("sr",))
    pdf_id, = box.enqueue(v.id, "pacs-web", radiologist, documents=("pdf",))
    assert {r.state for r in box.items()} == {"queued"}
    assert box.process_due() == 2
    rows = {r.id: r for r in box.items()}
    assert rows[sr_id].state == rows[pdf_id].state == "sent"

    sr_back = dcmread(io.BytesIO(_fetch(orthanc, rows[sr_id].sop_instance_uid)))
    assert sr_content(sr_back).to_dict() == v.content.to_dict()
    assert verify_sr(sr_back).ok
    pdf_back = extract_pdf(dcmread(io.BytesIO(_fetch(orthanc, rows[pdf_id].sop_instance_uid))))
    assert pdf_back == env.service.signed_pdf(v.id)
    with env.db.session() as s:
        assert audit.verify_chain(s).ok


def test_unreachable_peer_is_retried_then_failed_never_sent(env, radiologist):
    v = _signed(env, radiologist)
    dead = PacsNode(name="dead", protocol="dimse", ae_title="NOBODY", host="127.0.0.1", port=free_port(),
                    timeout=2)
    box = Outbox(env.service, nodes=lambda _n: dead, base_delay_s=30)
    item_id, = box.enqueue(v.id, "dead", radiologist, max_attempts=2)
    assert box.process_due() == 0
    row = box.items()[0]
    assert row.state == "retry" and row.attempts == 1 and row.last_error and row.sent_at is None
    assert box.process_due() == 0  # not due yet: back-off
    assert box.items()[0].attempts == 1
    assert box.process_due(now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)) == 0
    row = box.items()[0]
    assert row.state == "failed" and row.attempts == 2
    box.retry_now(item_id)
    assert box.items()[0].state == "retry"


def test_refusing_peer_and_crash_recovery(env, radiologist):
    v = _signed(env, radiologist)
    node = PacsNode(name="x", protocol="dimse", ae_title="X", host="127.0.0.1", port=104)

    def refuse(_node, _payload):
        from app.pacs.errors import PacsRemoteError
        raise PacsRemoteError("refused the C-STORE: status 0xA700 out of resources")

    box = Outbox(env.service, nodes=lambda _n: node, sender=refuse)
    item_id, = box.enqueue(v.id, "x", radiologist)
    box.process_due()
    assert box.items()[0].state == "retry" and "0xA700" in box.items()[0].last_error
    from app.reports.models import OutboxItem
    with env.db.session() as s:  # simulate a crash in the middle of a send
        s.get(OutboxItem, item_id).state = "sending"
    assert box.recover() == 1 and box.items()[0].state == "retry"
