"""Sign-off against an insider: DICOM signatures checked by DCMTK's dcmsign, semantic edits to every signed
object, authority read from the database, and `verify` that never crashes."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from test_reports_export_sr import FINDINGS, dciodvfy_errors

from app.reports.artefacts import KIND_PDF_DICOM, KIND_SIGNED_PDF, KIND_SR
from app.reports.authority import RoleError
from app.reports.verify_documents import (
    verify_dicom_document,
    verify_file,
    verify_pdf_document,
    verify_version,
)
from tests.support.reports_testing import PASSWORD, STUDY_UID, admin_session, drop_trigger, make_user


def dcmsign(path: Path, cert_pem: Path, *extra: str) -> subprocess.CompletedProcess:
    exe = shutil.which("dcmsign")
    if exe is None:
        pytest.skip("dcmsign (Debian package dcmtk) is not installed")
    return subprocess.run([exe, "--verify", "+rg", "+cf", str(cert_pem), *extra, str(path)], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def signed(env, radiologist, tmp_path):
    """A signed version, its three stored documents written to files, and the signer's certificate (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": FINDINGS, "indication": "Cough."}, radiologist)
    v = env.service.sign(v.id, radiologist, PASSWORD)
    files = {}
    for kind, name in ((KIND_SR, "sr.dcm"), (KIND_PDF_DICOM, "pdf.dcm"), (KIND_SIGNED_PDF, "r.pdf")):
        files[kind] = tmp_path / name
        files[kind].write_bytes(env.service.artefact(v.id, kind))
    cert = x509.load_der_x509_certificate(env.users.certificate_of("rad"))
    pem = tmp_path / "rad.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return v, files, pem


def _edit(path: Path, out: Path, change) -> Path:
    ds = dcmread(path)
    change(ds)
    ds.save_as(out, enforce_file_format=True)
    return out


def test_signed_objects_pass_dcmsign_and_dciodvfy(env, signed):
    v, files, pem = signed
    for kind, extra in ((KIND_SR, ("+rs",)), (KIND_PDF_DICOM, ())):
        proc = dcmsign(files[kind], pem, *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert not dciodvfy_errors(files[kind])
        res = verify_file(files[kind], env.db)
        assert res.ok, res.summary()
    ds = dcmread(files[KIND_SR])
    sig = ds.DigitalSignaturesSequence[0]
    assert sig.DigitalSignaturePurposeCodeSequence[0].CodeValue == "5"  # verification signature
    assert ds.MACParametersSequence[0].MACAlgorithm == "SHA256"
    assert {0x00100030, 0x00100040, 0x0040A730, 0x0040A073} <= {int(t) for t in
                                                               ds.MACParametersSequence[0].DataElementsSigned}
    assert verify_file(files[KIND_SIGNED_PDF], env.db).ok
    assert verify_version(env.db, v.id).ok, verify_version(env.db, v.id).summary()


def _add_recommendation(ds: Dataset) -> None:
    from pydicom.sr.codedict import codes

    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "121075", "DCM", "Recommendation"
    item.ConceptNameCodeSequence = [code]
    item.TextValue = "Recommendation: urgent CT-guided biopsy"
    ds.ContentSequence[-1].ContentSequence.append(item)
    assert codes  # the SR content tree really grew


def _add_coded_finding(ds: Dataset) -> None:
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "CODE"
    name, value = Dataset(), Dataset()
    name.CodeValue, name.CodingSchemeDesignator, name.CodeMeaning = "121071", "DCM", "Finding"
    value.CodeValue, value.CodingSchemeDesignator, value.CodeMeaning = "363358000", "SCT", "Malignant tumor of lung"
    item.ConceptNameCodeSequence, item.ConceptCodeSequence = [name], [value]
    ds.ContentSequence.append(item)


def _swap_key_image(ds: Dataset) -> None:
    for section in ds.ContentSequence:
        for item in getattr(section, "ContentSequence", []):
            if item.ValueType == "IMAGE":
                item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.9999"
                return
    raise AssertionError("no key image reference in the SR")


SR_EDITS = {
    "added recommendation": _add_recommendation,
    "added coded finding": _add_coded_finding,
    "swapped key-image reference": _swap_key_image,
    "renamed verifying observer": lambda ds: setattr(ds.VerifyingObserverSequence[0], "VerifyingObserverName",
                                                     "Mallory^Eve"),
    "changed birth date": lambda ds: setattr(ds, "PatientBirthDate", "19800101"),
    "changed sex": lambda ds: setattr(ds, "PatientSex", "M"),
    "added unsigned element": lambda ds: setattr(ds, "ImageComments", "urgent biopsy"),
    "moved to another patient": lambda ds: setattr(ds, "PatientID", "PAT999"),
}
PDF_EDITS = {
    "moved to another patient": lambda ds: setattr(ds, "PatientID", "PAT999"),
    "renamed patient": lambda ds: setattr(ds, "PatientName", "ROE^RICHARD"),
    "other study": lambda ds: setattr(ds, "StudyInstanceUID", "1.2.826.0.1.3680043.8.498.4242"),
    "retitled document": lambda ds: setattr(ds, "DocumentTitle", "Normal chest"),
}


@pytest.mark.parametrize("which", ["sr", "pdf"])
def test_semantic_edits_fail_dcmsign_and_radstation_verify(env, signed, tmp_path, which):
    _, files, pem = signed
    edits, src = (SR_EDITS, files[KIND_SR]) if which == "sr" else (PDF_EDITS, files[KIND_PDF_DICOM])
    for name, change in edits.items():
        out = _edit(src, tmp_path / f"edit-{which}.dcm", change)
        res = verify_file(out, env.db)
        assert not res.ok, f"{name}: radstation verify said VALID"
        if name != "added unsigned element":  # DCMTK checks only what the signature lists
            proc = dcmsign(out, pem)
            assert proc.returncode != 0, f"{name}: dcmsign accepted it\n{proc.stdout}{proc.stderr}"


def test_random_byte_flips_never_crash_verify(env, signed, tmp_path):
    _, files, _ = signed
    rng = random.Random(19)
    for kind, path in files.items():
        raw = path.read_bytes()
        for _ in range(12):
            i = rng.randrange(len(raw))
            bad = bytearray(raw)
            bad[i] ^= 1 << rng.randrange(8)
            out = tmp_path / f"flip{path.suffix}"
            out.write_bytes(bytes(bad))
            res = verify_file(out, env.db)  # must return a verdict, never raise
            assert res.summary().startswith(("VALID", "TAMPERED")), kind
            if not res.ok:
                assert res.problems and all(p.strip() for p in res.problems)


def test_demoted_radiologist_cannot_sign_and_verify_needs_authority(env, radiologist, tmp_path):
    v = env.service.open_or_create(STUDY_UID, radiologist)
    admin = admin_session(env)
    env.users.set_role("rad", "resident", actor=admin)  # demoted while logged in
    with pytest.raises(RoleError):
        env.service.sign(v.id, radiologist, PASSWORD)
    assert env.service.version(v.id).status == "draft"
    with pytest.raises(RoleError):  # no signing certificates for residents or admins
        env.users.pin_certificate("rad", env.users.certificate_of("rad"), actor=admin)
    with pytest.raises(RoleError):
        env.users.set_role("rad", "radiologist", actor=radiologist)  # only an admin may
    env.users.set_role("rad", "radiologist", actor=admin)
    signed = env.service.sign(v.id, radiologist, PASSWORD)
    assert verify_version(env.db, signed.id).ok


def test_signature_by_unregistered_or_unauthorised_key_is_rejected(env, radiologist, tmp_path):
    """A resident makes their own key and signs an SR/PDF with it: verify refuses the signer."""
    from app.reports.artefacts import make_artefacts
    from app.reports.document import build_document
    from app.reports.keys import create_self_signed

    make_user(env, "res2", "resident", with_key=False)
    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": FINDINGS}, radiologist)
    signed = env.service.sign(v.id, radiologist, PASSWORD)
    forger = create_self_signed("Dr Res2", PASSWORD, tmp_path / "res2.p12")
    arts = make_artefacts(build_document(env.service, signed.id), forger, "Dr Res2")
    for kind, data in arts.items():
        res = (verify_pdf_document(data, env.db) if kind == KIND_SIGNED_PDF
               else verify_dicom_document(data, env.db))
        assert not res.ok and any("not registered" in p for p in res.problems), res.summary()


def test_verify_stored_version_checks_artefacts_and_signer_row(env, signed):
    from sqlalchemy import text

    v, _, _ = signed
    other = make_user(env, "rad2", "radiologist")
    with env.db.engine.begin() as c:  # an insider moves the signature to another user and swaps the PDF
        drop_trigger(c, "report_signature_immutable")
        c.execute(text("update report_signature set signer_id=:u where version_id=:v"),
                  {"u": other.user_id, "v": v.id})
        c.execute(text("update report_artifact set data=:d where version_id=:v and kind='signed_pdf'"),
                  {"d": b"%PDF-1.7 forged", "v": v.id})
    res = verify_version(env.db, v.id)
    assert not res.ok
    text_ = res.summary()
    assert "rad2" in text_ and "signed_pdf" in text_, text_


def test_failed_logins_are_audited(env, radiologist):
    from sqlalchemy import select

    from app.reports.models import AuditEntry
    from app.reports.users import AccountLockedError, AuthError

    with pytest.raises(AuthError):
        env.users.authenticate("ghost", PASSWORD)
    for _ in range(3):
        with pytest.raises(AuthError):
            env.users.authenticate("rad", "wrong password")
    with pytest.raises(AccountLockedError):
        env.users.authenticate("rad", PASSWORD)
    with env.db.session() as s:
        rows = [(e.username, e.details) for e in s.scalars(select(AuditEntry).where(
            AuditEntry.action == "login_failed"))]
    assert ("ghost", '{"reason":"unknown or inactive"}') in rows
    assert ("rad", '{"reason":"locked"}') in rows


def test_rewritten_and_rehashed_audit_chain_is_caught_by_the_keyed_checkpoints(env, signed):
    """The attack from the issue: delete the export entries, move a signature to another user, recompute
    the whole chain and head. The unkeyed chain is consistent again; the keyed checkpoints are not."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from app.reports import audit
    from app.reports.models import AuditEntry, AuditHead

    v, _, _ = signed
    env.service.record_export(v.id, None, "sr", "/tmp/x.dcm")
    with env.db.engine.begin() as c:
        drop_trigger(c, "audit_entry_no_update")
        drop_trigger(c, "audit_entry_no_delete")
        drop_trigger(c, "audit_head_forward_only")  # the head would refuse to move back (0004_db_rules)
    with Session(env.db.engine) as s:
        for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "export")):
            s.delete(e)
        s.flush()
        sign_seq = None
        prev = audit.GENESIS_HASH
        for seq, e in enumerate(s.scalars(select(AuditEntry).order_by(AuditEntry.id)), 1):
            if e.action == "sign":
                e.username, sign_seq = "mallory", seq
            e.seq, e.prev_hash = seq, prev
            e.entry_hash = audit.chain_hash(prev, audit.entry_content(seq, e.at, e.username, e.action,
                                                                      e.object_type, e.object_id, e.details))
            prev = e.entry_hash
        head = s.get(AuditHead, 1)
        head.count, head.last_hash = seq, prev
        s.commit()
    with env.db.session() as s:
        res = audit.verify_chain(s)
    assert not res.ok and res.first_broken_checkpoint == sign_seq, res.summary()
    assert f"seq={sign_seq}" in res.summary()
    assert not verify_version(env.db, v.id).ok  # the signer's authority rests on the log


def test_audit_verify_cli_names_the_broken_checkpoint(env, signed, monkeypatch, capsys):
    import sys

    from sqlalchemy import text

    from app.cli import main

    with env.db.engine.begin() as c:
        drop_trigger(c, "audit_entry_no_update")
        c.execute(text("update audit_entry set details='{\"role\":\"admin\"}' where seq=2"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code = main(["audit", "verify", "--db", str(env.db.engine.url)])
    out = capsys.readouterr().out
    assert code == 1 and "seq=2" in out, out
