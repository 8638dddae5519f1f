"""Hospital-CA keys: import (PKCS#12), trust roots, revocation; strong PKCS#12 encryption."""

from __future__ import annotations

import datetime as dt
import io
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from app.cli import main
from app.reports.trust import trust_dir
from app.reports.verify_documents import verify_dicom_document, verify_version
from tests.support.reports_testing import PASSWORD, STUDY_UID, admin_session, make_user

NOW = dt.datetime.now(dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "General Hospital")])


def make_ca(cn: str = "General Hospital Signing CA"):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def issue(ca_key, ca_cert, cn: str):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(hours=1)).not_valid_after(NOW + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def run(monkeypatch, capsys, argv, stdin=""):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_ca_issued_key_import_sign_verify_and_revocation(env, tmp_path, monkeypatch, capsys):
    import shutil
    import subprocess

    ca_key, ca_cert = make_ca()
    user_key, user_cert = issue(ca_key, ca_cert, "Dr Ada Lovelace")
    p12 = tmp_path / "ada.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"ada", user_key, user_cert, [ca_cert], serialization.BestAvailableEncryption(b"issued-by-it")))
    admin_session(env)
    make_user(env, "ada", "radiologist", with_key=False)
    make_user(env, "bob", "resident", with_key=False)
    db = ["--db", str(env.db.engine.url)]

    # not trusted yet: refused
    code, out = run(monkeypatch, capsys, ["cert", "import", "ada", str(p12), "--admin", "root", "--password-stdin",
                                          *db], f"{PASSWORD}\n{PASSWORD}\nissued-by-it\n")
    assert code == 1 and "trust root" in out, out
    trust_dir().mkdir(parents=True, exist_ok=True)
    (trust_dir() / "hospital-ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    code, out = run(monkeypatch, capsys, ["cert", "import", "bob", str(p12), "--admin", "root", "--password-stdin",
                                          *db], f"{PASSWORD}\n{PASSWORD}\nissued-by-it\n")
    assert code == 1 and "signing certificates" in out, out  # a resident gets none
    code, out = run(monkeypatch, capsys, ["cert", "import", "ada", str(p12), "--admin", "root", "--password-stdin",
                                          *db], f"{PASSWORD}\n{PASSWORD}\nissued-by-it\n")
    assert code == 0 and "fingerprint" in out, out

    ada = env.users.authenticate("ada", PASSWORD)
    v = env.service.open_or_create(STUDY_UID, ada)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": "Clear lungs."}, ada)
    env.service.sign(v.id, ada, PASSWORD)
    assert verify_version(env.db, v.id).ok, verify_version(env.db, v.id).summary()
    sr = env.service.artefact(v.id, "sr")
    assert verify_dicom_document(sr, env.db).ok
    if shutil.which("dcmsign"):
        (tmp_path / "sr.dcm").write_bytes(sr)
        (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        proc = subprocess.run(["dcmsign", "--verify", "+rs", "+cf", str(tmp_path / "ca.pem"), str(tmp_path / "sr.dcm")],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    # the CA revokes the key with a date before the signature (key compromise): the signature no longer counts
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject).last_update(NOW)
           .next_update(NOW + dt.timedelta(days=7))
           .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(user_cert.serial_number)
                                    .revocation_date(NOW - dt.timedelta(minutes=30)).build())
           .sign(ca_key, hashes.SHA256()))
    (trust_dir() / "hospital.crl").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    res = verify_dicom_document(sr, env.db)
    assert not res.ok and any("revoked" in p for p in res.problems), res.summary()
    # and the root removed: not trusted
    (trust_dir() / "hospital.crl").unlink()
    (trust_dir() / "hospital-ca.pem").unlink()
    res = verify_dicom_document(sr, env.db)
    assert not res.ok and any("trust root" in p for p in res.problems), res.summary()


def test_pkcs12_is_written_with_pbes2_and_many_iterations(tmp_path):
    from asn1crypto import cms
    from asn1crypto import pkcs12 as a_p12

    from app.reports.keys import P12_KDF_ROUNDS, create_self_signed, load_p12

    path = tmp_path / "k.p12"
    create_self_signed("Dr K", PASSWORD, path)
    pfx = a_p12.Pfx.load(path.read_bytes())
    assert pfx["mac_data"]["iterations"].native >= P12_KDF_ROUNDS
    assert pfx["mac_data"]["mac"]["digest_algorithm"]["algorithm"].native == "sha256"
    algos = []
    for content_info in pfx.authenticated_safe:
        if content_info["content_type"].native == "encrypted_data":
            algos.append(content_info["content"]["encrypted_content_info"]["content_encryption_algorithm"])
        else:
            for bag in a_p12.SafeContents.load(content_info["content"].native):
                if bag["bag_id"].native == "pkcs8_shrouded_key_bag":
                    algos.append(bag["bag_value"]["encryption_algorithm"])
    assert algos and all(a["algorithm"].native == "pbes2" for a in algos)
    assert all(a.kdf_iterations >= P12_KDF_ROUNDS for a in algos)
    assert load_p12(path, PASSWORD).certificate is not None
    assert cms  # asn1crypto's CMS module is what pyHanko uses too
    with pytest.raises(ValueError):
        load_p12(path, "wrong password 1")
