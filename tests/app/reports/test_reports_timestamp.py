"""RFC 3161 time stamps from a local TSA (pyHanko's DummyTimeStamper behind HTTP) on the PDF and DICOM signatures."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydicom import dcmread

from app.reports.verify_documents import verify_dicom_document, verify_version
from tests.support.reports_testing import PASSWORD, STUDY_UID


def _tsa_material(tmp_path):
    now = dt.datetime.now(dt.UTC)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA Root")])
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name).public_key(root_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA")]))
            .issuer_name(root_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .sign(root_key, hashes.SHA256()))
    root_pem = tmp_path / "tsa-root.pem"
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    return root_pem, root, cert, key


@pytest.fixture
def tsa(tmp_path):
    from asn1crypto import tsp

    from tests.support.dummy_tsa import dummy_time_stamper

    root_pem, root, cert, key = _tsa_material(tmp_path)
    stamper = dummy_time_stamper(
        cert.public_bytes(serialization.Encoding.DER),
        key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        (root.public_bytes(serialization.Encoding.DER),))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            req = tsp.TimeStampReq.load(self.rfile.read(int(self.headers["Content-Length"])))
            body = stamper.request_tsa_response(req).dump()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", root_pem
    server.shutdown()
    server.server_close()


def test_signatures_carry_verified_rfc3161_time_stamps(env, radiologist, tsa, tmp_path):
    from app.settings import Settings

    url, root_pem = tsa
    settings = Settings()
    settings.set("tsa_url", url)
    settings.set("tsa_trust_roots", [str(root_pem)])
    settings.save()
    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": "Stamped."}, radiologist)
    env.service.sign(v.id, radiologist, PASSWORD)
    assert verify_version(env.db, v.id).ok, verify_version(env.db, v.id).summary()
    sr = env.service.artefact(v.id, "sr")
    path = tmp_path / "sr.dcm"
    path.write_bytes(sr)
    item = dcmread(path).DigitalSignaturesSequence[0]
    assert item.CertifiedTimestampType == "CMS_TSP" and len(item.CertifiedTimestamp) > 500
    res = verify_dicom_document(sr, env.db)
    assert res.ok and any("time-stamp authority" in n for n in res.notes), res.summary()

    if shutil.which("dcmsign"):
        from cryptography import x509 as cx509

        rad = tmp_path / "rad.pem"
        rad.write_bytes(cx509.load_der_x509_certificate(env.users.certificate_of("rad"))
                        .public_bytes(serialization.Encoding.PEM))
        proc = subprocess.run(["dcmsign", "--verify", "+tr", "+cf", str(rad), "+cf", str(root_pem), str(path)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    sig = PdfFileReader(io.BytesIO(env.service.signed_pdf(v.id))).embedded_signatures[0]
    unsigned = [a["type"].native for a in sig.signer_info["unsigned_attrs"]]
    assert "signature_time_stamp_token" in unsigned  # PAdES B-T

    # a stamp from an untrusted TSA is reported
    settings.set("tsa_trust_roots", [str(tmp_path / "nowhere.pem")])
    settings.save()
    res = verify_dicom_document(sr, env.db)
    assert not res.ok and any("time-stamp authority is not trusted" in p for p in res.problems), res.summary()
