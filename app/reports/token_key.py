"""Signing keys on a PKCS#11 token (smart card, HSM; SoftHSM2 in tests), through python-pkcs11.

The private key never leaves the token: every signature (the report payload, the PAdES PDF, the DICOM
signatures) is one C_Sign call with CKM_SHA256_RSA_PKCS (RSA) or CKM_ECDSA_SHA256 (EC). The certificate is
the one registered for the user in the database (an admin registers it with `radstation cert import`),
so a token only needs to hold the key. The token PIN is the user's key password (or the account password).

Setting `signing_token`: {"module": "/usr/lib/softhsm/libsofthsm2.so", "token_label": "RadStation",
"key_label": "{username}"} (key_label is formatted with the user name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization


class TokenError(ValueError):
    """The token, its key or its PIN is not usable."""


@dataclass
class TokenIdentity:
    certificate: x509.Certificate
    _session: Any = field(repr=False)
    _key: Any = field(repr=False)
    _ec: bool = False
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def sign_sha256(self, data: bytes) -> bytes:
        from pkcs11 import Mechanism
        from pkcs11.util.ec import encode_ecdsa_signature

        if self._ec:
            return encode_ecdsa_signature(self._key.sign(data, mechanism=Mechanism.ECDSA_SHA256))
        return self._key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)

    def close(self) -> None:
        try:
            self._session.close()
        except Exception:  # noqa: BLE001 - closing a session that the token already dropped
            pass


def token_settings(settings=None) -> dict[str, str] | None:
    from app.settings import current_settings

    cfg = (settings or current_settings()).get("signing_token") or {}
    return cfg if isinstance(cfg, dict) and cfg.get("module") else None


def open_token_key(module: str, token_label: str, key_label: str, pin: str, certificate_der: bytes) -> TokenIdentity:
    """Log in to the token and find the private key labelled `key_label` matching the certificate."""
    import pkcs11
    from pkcs11 import KeyType, ObjectClass
    from pkcs11.exceptions import PKCS11Error

    cert = x509.load_der_x509_certificate(certificate_der)
    try:
        lib = pkcs11.lib(module)
        token = lib.get_token(token_label=token_label)
        session = token.open(user_pin=pin)
    except (PKCS11Error, RuntimeError, OSError) as exc:
        raise TokenError(f"cannot log in to token {token_label!r} via {module}: {type(exc).__name__} {exc}") from exc
    try:
        keys = list(session.get_objects({pkcs11.Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                         pkcs11.Attribute.LABEL: key_label}))
    except PKCS11Error as exc:
        session.close()
        raise TokenError(f"cannot search token {token_label!r}: {exc}") from exc
    if len(keys) != 1:
        session.close()
        raise TokenError(f"token {token_label!r} holds {len(keys)} private keys labelled {key_label!r}, expected 1")
    key = keys[0]
    identity = TokenIdentity(cert, session, key, _ec=key.key_type == KeyType.EC)
    probe = b"radstation token key check"
    try:
        from app.reports.signing import verify_bytes

        if not verify_bytes(certificate_der, probe, identity.sign_sha256(probe)).valid:
            raise TokenError(f"the key {key_label!r} on the token does not match the registered certificate")
    except PKCS11Error as exc:
        identity.close()
        raise TokenError(f"the token refused to sign: {exc}") from exc
    except TokenError:
        identity.close()
        raise
    return identity
