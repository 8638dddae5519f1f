"""A signed document is VALID only when it is on record: the attacks of someone who still holds a signing key.

A radiologist can re-sign an edited copy of their own report (adding a recommendation they never made), and
one since demoted can back-date a signature to a time when they had authority. Both make cryptographically
perfect DICOM/PDF signatures by a registered key; only the audit log's record of what was signed refutes
them. A legitimate copy re-encoded by a PACS keeps its signature value and stays VALID.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from dataclasses import replace

import pytest
from pydicom import dcmread
from pydicom.uid import DeflatedExplicitVRLittleEndian
from test_reports_export_sr import FINDINGS

from app.reports.artefacts import KIND_PDF_DICOM, KIND_SIGNED_PDF, KIND_SR
from app.reports.canonical import canonical_bytes
from app.reports.content import ReportContent
from app.reports.dicom_signature import sign_dataset
from app.reports.document import build_document
from app.reports.export_encapsulated import build_encapsulated_pdf
from app.reports.export_pdf import Letterhead, render_pdf, sign_pdf
from app.reports.export_sr import build_sr
from app.reports.keys import default_p12_path, load_p12
from app.reports.signing import sign_bytes
from app.reports.verify_documents import (
    NOT_ON_RECORD,
    verify_dicom_document,
    verify_pdf_document,
    verify_version,
)
from tests.support.reports_testing import PASSWORD, STUDY_UID, admin_session

ADDED = " Recommendation: urgent CT-guided biopsy."


@pytest.fixture
def signed(env, radiologist):
    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": FINDINGS, "impression": "Normal chest."},
                           radiologist)
    return env.service.sign(v.id, radiologist, PASSWORD)


def forge(env, version_id: int, when: dt.datetime | None = None) -> dict[str, bytes]:
    """What the key holder does: take the signed version, add a recommendation, sign the payload, SR,
    encapsulated PDF and PDF again with their own (registered) key, the DICOM signatures dated `when`."""
    identity = load_p12(default_p12_path("rad"), PASSWORD)
    doc = build_document(env.service, version_id)
    v = doc.version
    payload = json.loads(v.signature["canonical"])
    payload["sections"]["impression"] += ADDED
    canonical = canonical_bytes(payload)
    signature, algorithm = sign_bytes(identity, canonical)
    content = ReportContent.from_dict({**v.content.to_dict(), "impression": payload["sections"]["impression"]})
    doc = replace(doc, version=replace(v, content=content, signature={**v.signature, "canonical": canonical,
                                                                       "signature": signature,
                                                                       "algorithm": algorithm}))
    pdf = sign_pdf(render_pdf(doc, Letterhead.load(None), None), identity, "Dr Rad")
    return {KIND_SR: sign_dataset(build_sr(doc), identity, purpose="5", when=when),
            KIND_PDF_DICOM: sign_dataset(build_encapsulated_pdf(doc, pdf), identity, purpose="1", when=when),
            KIND_SIGNED_PDF: pdf}


def verdict(env, kind: str, data: bytes):
    return (verify_pdf_document(data, env.db) if kind == KIND_SIGNED_PDF
            else verify_dicom_document(data, env.db))


def test_signer_re_signing_an_edited_copy_is_not_on_record(env, signed):
    for kind, data in forge(env, signed.id).items():
        res = verdict(env, kind, data)
        assert not res.ok, f"{kind}: the re-signed edited copy verified"
        assert NOT_ON_RECORD in res.problems, res.summary()
    for kind in (KIND_SR, KIND_PDF_DICOM, KIND_SIGNED_PDF):  # the documents of record still verify
        res = verdict(env, kind, env.service.artefact(signed.id, kind))
        assert res.ok, res.summary()
    assert verify_version(env.db, signed.id).ok


def test_demoted_radiologist_back_dating_a_signature_is_not_on_record(env, signed):
    admin = admin_session(env)
    time.sleep(1.1)  # signing times are compared to the second: the demotion comes strictly later
    env.users.set_role("rad", "resident", actor=admin)
    before_demotion = dt.datetime.fromisoformat(signed.signed_at)
    forged = forge(env, signed.id, when=before_demotion)
    for kind in (KIND_SR, KIND_PDF_DICOM):
        res = verdict(env, kind, forged[kind])
        assert not res.ok and NOT_ON_RECORD in res.problems, res.summary()
        # the back-dating itself works: at the claimed time the signer had authority, so this is the only refusal
        assert res.problems == [NOT_ON_RECORD], res.summary()
    # the genuine documents signed before the demotion stay valid
    assert verdict(env, KIND_SR, env.service.artefact(signed.id, KIND_SR)).ok


def test_pacs_re_encoded_copy_stays_valid(env, signed):
    """A PACS may store the SR in another transfer syntax (here deflated): the bytes differ, the signature
    value does not."""
    ds = dcmread(io.BytesIO(env.service.artefact(signed.id, KIND_SR)))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    assert data != env.service.artefact(signed.id, KIND_SR)
    res = verify_dicom_document(data, env.db)
    assert res.ok, res.summary()
