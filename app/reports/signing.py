"""Raw signatures over canonical report bytes, and their verification from the certificate alone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from app.reports.keys import SigningIdentity

ALGORITHM_RSA = "RSASSA-PKCS1-v1_5-SHA256"
ALGORITHM_EC = "ECDSA-SHA256"


def sign_bytes(identity: SigningIdentity, data: bytes) -> tuple[bytes, str]:
    """Return (signature, algorithm name); `identity` may be a key file's or a token's (PKCS#11)."""
    pub = x509.load_der_x509_certificate(identity.certificate_der).public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        return identity.sign_sha256(data), ALGORITHM_RSA
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return identity.sign_sha256(data), ALGORITHM_EC
    raise TypeError(f"unsupported key type {type(pub).__name__}")


@dataclass(frozen=True)
class SignatureCheck:
    valid: bool
    reason: str
    signer: str = ""


def verify_bytes(cert_der: bytes, data: bytes, signature: bytes, at: dt.datetime | None = None) -> SignatureCheck:
    """Check `signature` over `data` with the certificate's public key (and its validity period at `at`)."""
    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError as exc:
        return SignatureCheck(False, f"certificate cannot be read: {exc}")
    cn = ", ".join(a.value for a in cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME))
    pub = cert.public_key()
    try:
        if isinstance(pub, rsa.RSAPublicKey):
            pub.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            return SignatureCheck(False, f"unsupported public key {type(pub).__name__}", cn)
    except InvalidSignature:
        return SignatureCheck(False, "signature does not match the signed content (content altered)", cn)
    if at is not None:
        at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
        if not (cert.not_valid_before_utc <= at <= cert.not_valid_after_utc):
            return SignatureCheck(False, f"certificate was not valid at signing time {at.isoformat()}", cn)
    return SignatureCheck(True, "signature valid", cn)
