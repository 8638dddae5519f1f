"""The key object selection of a signed report is DICOM-signed at sign time: DCMTK and `radstation verify`
accept it untouched, refuse it after another image is swapped in or it is moved to another patient, and the
outbox sends exactly the signed bytes."""

from __future__ import annotations

import io

from pydicom import dcmread
from test_reports_export_sr import FINDINGS, dciodvfy_errors
from test_reports_signoff import dcmsign

from app.dicom_objects.classify import KOS_CLASS
from app.reports.artefacts import KIND_KOS
from app.reports.outbox import build_payload
from app.reports.verify_documents import verify_file, verify_version
from tests.support.reports_testing import PASSWORD, STUDY_UID


def _swap_image(ds) -> None:
    for study in ds.CurrentRequestedProcedureEvidenceSequence:
        for series in study.ReferencedSeriesSequence:
            for ref in series.ReferencedSOPSequence:
                if ref.ReferencedSOPClassUID != "1.2.840.10008.5.1.4.1.1.88.33":  # an image, not the SR
                    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.9999"
                    return
    raise AssertionError("the KOS lists no image")


EDITS = {
    "another image swapped in": _swap_image,
    "moved to another patient": lambda ds: setattr(ds, "PatientID", "PAT999"),
    "moved to another study": lambda ds: setattr(ds, "StudyInstanceUID", "1.2.826.0.1.3680043.8.498.4242"),
}


def test_kos_is_signed_checked_and_sent_as_signed(env, radiologist, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": FINDINGS}, radiologist)
    signed = env.service.sign(v.id, radiologist, PASSWORD)
    kos = env.service.artefact(signed.id, KIND_KOS)
    assert kos is not None, "a report with key images stores a signed KOS"
    assert str(dcmread(io.BytesIO(kos)).SOPClassUID) == KOS_CLASS
    path = tmp_path / "kos.dcm"
    path.write_bytes(kos)
    pem = tmp_path / "rad.pem"
    pem.write_bytes(x509.load_der_x509_certificate(env.users.certificate_of("rad"))
                    .public_bytes(serialization.Encoding.PEM))

    proc = dcmsign(path, pem)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not dciodvfy_errors(path)
    res = verify_file(path, env.db)
    assert res.ok and "key object selection" in res.subject, res.summary()
    assert build_payload(env.service, signed.id, "kos")[0] == kos  # the outbox sends the signed bytes

    for name, change in EDITS.items():
        ds = dcmread(path)
        change(ds)
        out = tmp_path / "edited.dcm"
        ds.save_as(out, enforce_file_format=True)
        assert not verify_file(out, env.db).ok, f"{name}: radstation verify said VALID"
        proc = dcmsign(out, pem)
        assert proc.returncode != 0, f"{name}: dcmsign accepted it\n{proc.stdout}{proc.stderr}"

    assert verify_version(env.db, signed.id).ok
    from sqlalchemy import text

    with env.db.engine.begin() as c:  # an insider replaces the stored KOS with an unsigned one of their own
        ds = dcmread(io.BytesIO(kos))
        _swap_image(ds)
        del ds.DigitalSignaturesSequence
        del ds.MACParametersSequence
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        c.execute(text("update report_artifact set data=:d where version_id=:v and kind='kos'"),
                  {"d": buf.getvalue(), "v": signed.id})
    res = verify_version(env.db, signed.id)
    assert not res.ok and "stored kos" in res.summary(), res.summary()
