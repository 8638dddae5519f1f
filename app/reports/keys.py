"""Per-user signing keys: a self-signed X.509 certificate + private key in a PKCS#12 file.

By default the PKCS#12 file is encrypted with the user's account password, so the password that `sign`
re-asks both proves presence and unlocks the key; a user may choose a separate key password instead. The
file is written with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) and an HMAC-SHA256 MAC at `P12_KDF_ROUNDS`
iterations, so a copied key file is no cheaper to attack than the argon2id password hash. Real
deployments can drop in a CA-issued PKCS#12 of the same shape.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.paths import data_dir


class KeyError_(ValueError):
    """The PKCS#12 file is missing, unreadable, or the password does not open it."""


@dataclass(frozen=True)
class SigningIdentity:
    """An unlocked key with its certificate (kept in memory only while signing)."""

    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()  # CA certificates that came with a CA-issued key

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def sign_sha256(self, data: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 (RSA keys) or DER ECDSA (EC keys) over SHA-256 of `data`."""
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))


def keys_dir() -> Path:
    path = data_dir() / "keys"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_p12_path(username: str) -> Path:
    return keys_dir() / f"{username}.p12"


def certificate_fingerprint(cert_der: bytes) -> str:
    """SHA-256 of the DER certificate, hex: how the user table pins a user's certificate."""
    return x509.load_der_x509_certificate(cert_der).fingerprint(hashes.SHA256()).hex()


def create_self_signed(
    common_name: str,
    password: str,
    path: Path,
    *,
    organization: str = "RadStation local",
    email: str | None = None,
    days: int = 3 * 365,
    key_size: int = 2048,
) -> SigningIdentity:
    """Make an RSA key + self-signed certificate fit for document signing and write it as PKCS#12."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)]
    if email:
        attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    name = x509.Name(attrs)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_p12(SigningIdentity(key, cert), password, path, friendly_name=common_name)
    return SigningIdentity(key, cert)


P12_KDF_ROUNDS = 600_000  # PBKDF2-HMAC-SHA256 (OWASP 2023 guidance for SHA-256)


def p12_encryption(password: str, rounds: int | None = None) -> serialization.KeySerializationEncryption:
    return (serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(rounds or P12_KDF_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(password.encode("utf-8")))


def _pkcs12_mac_key(password: str, salt: bytes, rounds: int) -> bytes:
    """RFC 7292 B.2 key derivation (ID 3, MAC key) with SHA-256: one 32-byte block, so I needs no update."""
    v = 64
    pw = password.encode("utf-16-be") + b"\0\0"

    def fill(b: bytes) -> bytes:  # repeat to a whole number of v-byte blocks
        n = v * -(-len(b) // v)
        return (b * (n // len(b) + 1))[:n] if b else b""

    digest = hashlib.sha256(bytes([3]) * v + fill(salt) + fill(pw)).digest()
    for _ in range(rounds - 1):
        digest = hashlib.sha256(digest).digest()
    return digest


def strengthen_mac(data: bytes, password: str, rounds: int) -> bytes:
    """Re-MAC a PKCS#12 file at `rounds` iterations (HMAC-SHA256, fresh salt): OpenSSL writes the MAC at a
    fixed 2,048 iterations, which would make the MAC a cheap password oracle next to the PBES2 key bag."""
    from asn1crypto import algos
    from asn1crypto import pkcs12 as asn1_pkcs12

    pfx = asn1_pkcs12.Pfx.load(data)
    salt = os.urandom(32)
    mac = hmac.new(_pkcs12_mac_key(password, salt, rounds), pfx["auth_safe"]["content"].native,
                   hashlib.sha256).digest()
    pfx["mac_data"] = asn1_pkcs12.MacData({
        "mac": algos.DigestInfo({"digest_algorithm": {"algorithm": "sha256"}, "digest": mac}),
        "mac_salt": salt, "iterations": rounds})
    return pfx.dump(force=True)


def write_p12(identity: SigningIdentity, password: str, path: Path, friendly_name: str = "",
              chain: list[x509.Certificate] | None = None) -> None:
    """Write atomically with owner-only permissions (PBES2/AES-256, PBKDF2 at P12_KDF_ROUNDS)."""
    data = pkcs12.serialize_key_and_certificates(
        friendly_name.encode() or None, identity.private_key, identity.certificate, chain or None,
        p12_encryption(password),
    )
    data = strengthen_mac(data, password, P12_KDF_ROUNDS)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".p12.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def load_p12(path: Path, password: str) -> SigningIdentity:
    if not path.exists():
        raise KeyError_(f"no signing key at {path}; create one with `radstation cert create`")
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(path.read_bytes(), password.encode("utf-8"))
    except ValueError as exc:
        raise KeyError_(f"cannot open {path}: wrong password or damaged file (if the key has its own "
                        "password, enter that as the key password)") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) or cert is None:
        raise KeyError_(f"{path} does not hold both an RSA/EC private key and a certificate")
    return SigningIdentity(key, cert, tuple(extra))


def rewrap_p12(path: Path, old_password: str, new_password: str) -> None:
    """Re-encrypt the key file after a password change (the key itself stays the same)."""
    identity = load_p12(path, old_password)
    write_p12(identity, new_password, path, chain=list(identity.chain))


def load_identity_file(path: Path, password: str) -> tuple[SigningIdentity, list[x509.Certificate]]:
    """A CA-issued key: PKCS#12 (.p12/.pfx) or PEM (private key + certificate chain, signer first)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyError_(f"cannot read {path}: {exc}") from exc
    pw = password.encode("utf-8") if password else None
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_private_key(data, pw)
            certs = x509.load_pem_x509_certificates(data)
        except (ValueError, TypeError) as exc:
            raise KeyError_(f"cannot open {path}: wrong password or not a PEM key + certificate chain") from exc
    else:
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, pw)
        except ValueError as exc:
            raise KeyError_(f"cannot open {path}: wrong password or damaged file (if the key has its own "
                        "password, enter that as the key password)") from exc
        certs = ([cert] if cert else []) + list(extra)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) or not certs:
        raise KeyError_(f"{path} must hold an RSA or EC private key and its certificate")
    pub = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    signer = [c for c in certs if c.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == pub]
    if not signer:
        raise KeyError_(f"{path}: no certificate matches the private key")
    return SigningIdentity(key, signer[0]), [c for c in certs if c is not signer[0]]
