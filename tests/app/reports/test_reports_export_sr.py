"""DICOM SR export: dciodvfy clean, round trip of the text, tamper detection."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from pydicom import dcmread

from app.reports.document import build_document
from app.reports.export_sr import SRExportError, build_sr, sr_content, verify_sr, write_sr
from tests.support.reports_testing import PASSWORD, SOP_UIDS, STUDY_UID

FINDINGS = "Heart size normal.\nSmall right pleural effusion — new since prior; no pneumothorax."


def dciodvfy_errors(path) -> list[str]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    return [ln for ln in out.splitlines() if ln.startswith("Error")]


def signed_version(env, user, **sections):
    v = env.service.open_or_create(STUDY_UID, user)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": FINDINGS, **sections}, user)
    return env.service.sign(v.id, user, PASSWORD)


def test_sr_is_dciodvfy_clean_and_round_trips(env, radiologist, tmp_path):
    v = signed_version(env, radiologist, indication="Cough, fever.")
    doc = build_document(env.service, v.id)
    path = write_sr(doc, tmp_path / "report.dcm")
    errors = dciodvfy_errors(path)
    assert not errors, "\n".join(errors)
    ds = dcmread(path)
    assert ds.Modality == "SR" and ds.VerificationFlag == "VERIFIED" and ds.CompletionFlag == "COMPLETE"
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "2000"
    assert ds.VerifyingObserverSequence[0].VerifyingObserverName == "Rad^^^Dr"
    assert sr_content(ds).to_dict() == v.content.to_dict()
    refs = {r.ReferencedSOPInstanceUID for s in ds.CurrentRequestedProcedureEvidenceSequence
            for se in s.ReferencedSeriesSequence for r in se.ReferencedSOPSequence}
    assert refs == set(SOP_UIDS)
    assert verify_sr(path).ok, verify_sr(path).summary()


def test_verify_detects_one_byte_change_in_exported_sr(env, radiologist, tmp_path):
    v = signed_version(env, radiologist)
    path = write_sr(build_document(env.service, v.id), tmp_path / "r.dcm")
    raw = path.read_bytes()
    i = raw.index(b"Small right")
    path.write_bytes(raw[:i] + b"Smell" + raw[i + 5:])  # one byte: a -> e
    res = verify_sr(path)
    assert not res.ok and any("findings" in p for p in res.problems), res.summary()


def test_amendment_sr_references_its_predecessor(env, radiologist, tmp_path):
    v = signed_version(env, radiologist)
    am = env.service.amend(v.id, radiologist, reason="Wrong side in the impression.")
    env.service.save_draft(am.id, {**am.content.to_dict(), "impression": "Effusion, corrected side: left."},
                           radiologist)
    env.service.sign(am.id, radiologist, PASSWORD)
    first, second = build_sr(build_document(env.service, v.id)), build_sr(build_document(env.service, am.id))
    pred = second.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert pred.ReferencedSOPInstanceUID == first.SOPInstanceUID
    path = tmp_path / "am.dcm"
    second.save_as(path, enforce_file_format=True)
    assert not dciodvfy_errors(path)


def test_unsigned_report_is_refused(env, radiologist):
    v = env.service.open_or_create(STUDY_UID, radiologist)
    with pytest.raises(SRExportError):
        build_sr(build_document(env.service, v.id))



@pytest.mark.parametrize("text", ["Normal heart size. ", "No effusion.  ", "Lines:\nnone \n"],
                         ids=["one-space", "two-spaces", "space-before-newline"])
def test_a_section_typed_with_trailing_spaces_verifies_in_the_sr(env, radiologist, tmp_path, text):
    """DICOM text values drop trailing spaces (padding, PS3.5 6.2): a report signed with a section ending in a
    space must not read as tampered in its SR, while any other change still does."""
    from app.reports.artefacts import KIND_SR
    from app.reports.verify_documents import verify_dicom_document

    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": text, "impression": "Normal. "}, radiologist)
    v = env.service.sign(v.id, radiologist, PASSWORD)
    path = write_sr(build_document(env.service, v.id), tmp_path / "r.dcm")
    assert verify_sr(path).ok, verify_sr(path).summary()
    of_record = verify_dicom_document(env.service.artefact(v.id, KIND_SR), env.db)  # the DICOM-signed SR
    assert of_record.ok, of_record.summary()
    raw = path.read_bytes()
    i = raw.index(b"Normal. ") if b"Normal. " in raw else raw.index(b"Normal.")
    path.write_bytes(raw[:i] + b"Nermal." + raw[i + 7:])  # a real change next to the spaces is still caught
    res = verify_sr(path)
    assert not res.ok and any("impression" in p for p in res.problems), res.summary()
