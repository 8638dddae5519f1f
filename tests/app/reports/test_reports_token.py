"""Signing with a key on a PKCS#11 token: SoftHSM2 (Debian softhsm2) through python-pkcs11."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from app.reports.token_key import TokenError
from app.reports.verify_documents import verify_version
from tests.support.reports_testing import PASSWORD, STUDY_UID, admin_session, make_user

MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory):
    """One SoftHSM2 token per test process: the PKCS#11 library reads its configuration once, at the first
    C_Initialize, so every test of the session shares this token (each with its own key label)."""
    import os

    if shutil.which("softhsm2-util") is None or not os.path.exists(MODULE):
        pytest.skip("SoftHSM2 (Debian softhsm2) is not installed")
    pytest.importorskip("pkcs11")
    work = tmp_path_factory.mktemp("softhsm")
    tokens = work / "tokens"
    tokens.mkdir()
    conf = work / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "RadStation", "--pin", PASSWORD,
                    "--so-pin", "so-pin-1234"], check=True, capture_output=True, timeout=60)
    return work


def _key_on_token(work, label: str) -> x509.Certificate:
    """An RSA key imported into the token (the software copy is deleted) and its self-signed certificate."""
    import secrets

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Dr {label.title()} (token)")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    pem = work / f"{label}.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    subprocess.run(["softhsm2-util", "--import", str(pem), "--token", "RadStation", "--label", label,
                    "--id", secrets.token_hex(4), "--pin", PASSWORD], check=True, capture_output=True, timeout=60)
    pem.unlink()
    return cert


def test_sign_with_a_token_key(env, softhsm, monkeypatch, capsys):
    import io
    import secrets
    import sys

    from app.cli import main
    from app.settings import Settings

    name = f"tok{secrets.token_hex(3)}"  # a key label of its own on the shared token
    cert = _key_on_token(softhsm, name)
    admin = admin_session(env)
    user = make_user(env, name, "radiologist", with_key=False)
    pem = softhsm / f"{name}-cert.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    code = main(["cert", "register", name, str(pem), "--admin", "root", "--password-stdin",
                 "--db", str(env.db.engine.url)])
    assert code == 0, capsys.readouterr()
    settings = Settings()
    settings.set("signing_token", {"module": MODULE, "token_label": "RadStation", "key_label": "{username}"})
    settings.save()

    v = env.service.open_or_create(STUDY_UID, user)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": "Signed on the token."}, user)
    signed = env.service.sign(v.id, user, PASSWORD)
    assert signed.status == "final"
    res = verify_version(env.db, v.id)
    assert res.ok, res.summary()

    other = make_user(env, "nokey", "radiologist", with_key=False)  # no key with that label on the token
    env.users.pin_certificate("nokey", cert.public_bytes(serialization.Encoding.DER), actor=admin)
    v2 = env.service.open_or_create("1.2.826.0.1.3680043.8.498.1001", other)
    with pytest.raises(TokenError):
        env.service.sign(v2.id, other, PASSWORD)
