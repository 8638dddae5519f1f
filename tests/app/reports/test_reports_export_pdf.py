"""Signed PDF (pyHanko PAdES validation), DICOM Encapsulated PDF (dciodvfy clean), tamper detection."""

from __future__ import annotations

import io

from pydicom import dcmread
from test_reports_export_sr import dciodvfy_errors

from app.reports.document import build_document
from app.reports.export_encapsulated import build_encapsulated_pdf, extract_pdf
from app.reports.verify import verify_pdf
from tests.support.reports_testing import PASSWORD, STUDY_UID

TEXT = "Lungs clear. Ünïcode kept: 5 mm nodule → follow-up; café."


def _signed(env, user):
    v = env.service.open_or_create(STUDY_UID, user)
    env.service.load_ai_draft(v.id, TEXT, "No acute disease.", {"engine": "medim", "weights_hash": "f" * 64,
                                                                 "seed": 3}, user)
    env.service.accept_ai(v.id, user)
    return env.service.sign(v.id, user, PASSWORD)


def test_signed_pdf_validates_with_pyhanko_and_detects_changes(env, radiologist):
    v = _signed(env, radiologist)
    pdf = env.service.signed_pdf(v.id)
    assert pdf and pdf.startswith(b"%PDF")
    cert = env.users.certificate_of("rad")
    res = verify_pdf(pdf, cert)
    assert res.ok, res.summary()

    from asn1crypto import x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext
    sig = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
    status = validate_pdf_signature(sig, ValidationContext(trust_roots=[x509.Certificate.load(cert)]))
    assert status.bottom_line and status.intact and status.valid and status.trusted

    i = pdf.index(b"/Title")  # one byte inside the signed range
    tampered = pdf[:i + 1] + bytes([pdf[i + 1] ^ 0x01]) + pdf[i + 2:]
    assert not verify_pdf(tampered, cert).ok


def test_encapsulated_pdf_is_dciodvfy_clean_and_carries_the_signed_pdf(env, radiologist, tmp_path):
    v = _signed(env, radiologist)
    pdf = env.service.signed_pdf(v.id)
    ds = build_encapsulated_pdf(build_document(env.service, v.id), pdf)
    path = tmp_path / "pdf.dcm"
    ds.save_as(path, enforce_file_format=True)
    errors = dciodvfy_errors(path)
    assert not errors, "\n".join(errors)
    back = extract_pdf(dcmread(path))
    (tmp_path / "out.pdf").write_bytes(back)
    assert back == pdf and verify_pdf(back, env.users.certificate_of("rad")).ok


def test_pdf_with_key_images_and_unsigned_watermark(env, radiologist):
    from PIL import Image

    from app.reports.export_pdf import render_pdf

    buf = io.BytesIO()
    Image.linear_gradient("L").resize((128, 96)).save(buf, format="PNG")
    v = env.service.open_or_create(STUDY_UID, radiologist)
    pdf = render_pdf(build_document(env.service, v.id), key_images=[(f"Image {i}", buf.getvalue()) for i in range(5)])
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Subtype /Image") == 1  # one image object, reused
    assert not verify_pdf(pdf).ok  # unsigned draft PDFs never pass verification
