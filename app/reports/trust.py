"""Hospital CA trust: signing certificates issued by a site's CA, checked against configured roots and CRLs.

A site lists its CA certificates (PEM or DER; roots, and intermediates it trusts) in the `signing_trust_roots`
setting or drops them into the data dir's `trust/` folder, and its certificate revocation lists in
`signing_crls` or `trust/*.crl`. A CA-issued signing certificate is then accepted only when it chains to one
of those anchors (each link's signature, validity at the signing time, CA basic constraints), carries a
signing key usage, and is not revoked on or before the signing time by a CRL its issuer signed.
Self-signed certificates (single workstation) are trusted only through their registration to a user.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtensionOID

MAX_CHAIN = 8


def _load_certs(path: Path) -> list[x509.Certificate]:
    data = path.read_bytes()
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def _load_crl(path: Path) -> x509.CertificateRevocationList:
    data = path.read_bytes()
    if b"-----BEGIN X509 CRL-----" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def trust_dir() -> Path:
    from app.paths import data_dir

    return data_dir() / "trust"


def _configured(key: str, patterns: tuple[str, ...], settings=None) -> list[Path]:
    from app.settings import current_settings

    value = (settings or current_settings()).get(key, []) or []
    paths = [Path(p) for p in ([value] if isinstance(value, str) else value)]
    folder = trust_dir()
    if folder.is_dir():
        for pattern in patterns:
            paths += sorted(folder.glob(pattern))
    return paths


def trust_anchors(settings=None) -> tuple[list[x509.Certificate], list[str]]:
    """Configured CA certificates, and a problem line for each file that cannot be read."""
    certs, problems = [], []
    for path in _configured("signing_trust_roots", ("*.pem", "*.crt", "*.cer"), settings):
        try:
            certs += _load_certs(path)
        except (OSError, ValueError) as exc:
            problems.append(f"trust root {path} cannot be read: {exc}")
    return certs, problems


def revocation_lists(settings=None) -> tuple[list[x509.CertificateRevocationList], list[str]]:
    crls, problems = [], []
    for path in _configured("signing_crls", ("*.crl",), settings):
        try:
            crls.append(_load_crl(path))
        except (OSError, ValueError) as exc:
            problems.append(f"revocation list {path} cannot be read: {exc}")
    return crls, problems


def is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _valid_at(cert: x509.Certificate, at: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= at <= cert.not_valid_after_utc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.ca)
    except x509.ExtensionNotFound:
        return False


def _may_sign_documents(cert: x509.Certificate) -> bool:
    try:
        ku = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE).value
    except x509.ExtensionNotFound:
        return True
    return bool(ku.digital_signature or ku.content_commitment)


def check_certificate(cert_der: bytes, at: dt.datetime, extra_chain: list[bytes] | None = None,
                      anchors: list[x509.Certificate] | None = None,
                      crls: list[x509.CertificateRevocationList] | None = None, settings=None) -> list[str]:
    """Problems with a signing certificate at time `at` (empty: fine). Self-signed: only its own validity
    (registration to a user is checked elsewhere); CA-issued: the chain, key usage and revocation. Trust roots
    and CRLs: `anchors`/`crls`, else those configured in `settings` (default: the settings in use)."""
    problems: list[str] = []
    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError as exc:
        return [f"the signing certificate cannot be read: {exc}"]
    at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    if not _valid_at(cert, at):
        problems.append(f"the signing certificate was not valid at the signing time {at.isoformat()}")
    if not _may_sign_documents(cert):
        problems.append("the signing certificate's key usage does not allow signatures")
    if is_self_signed(cert):
        return problems
    if anchors is None:
        anchors, bad = trust_anchors(settings)
        problems += bad
    if crls is None:
        crls, bad = revocation_lists(settings)
        problems += bad
    pool = anchors + [x509.load_der_x509_certificate(d) for d in (extra_chain or [])]
    anchor_set = {a.fingerprint(a.signature_hash_algorithm or _sha256()) for a in anchors}
    current, chain = cert, [cert]
    for _ in range(MAX_CHAIN):
        issuer = _find_issuer(current, pool)
        if issuer is None:
            problems.append("the signing certificate is not issued by a configured trust root "
                            f"(issuer {current.issuer.rfc4514_string()})")
            return problems
        if not _is_ca(issuer):
            problems.append(f"{issuer.subject.rfc4514_string()} is not a CA certificate")
        if not _valid_at(issuer, at):
            problems.append(f"CA certificate {issuer.subject.rfc4514_string()} was not valid at the signing time")
        problems += _revocation(current, issuer, crls, at)
        if issuer.fingerprint(issuer.signature_hash_algorithm or _sha256()) in anchor_set:
            return problems
        if issuer in chain or is_self_signed(issuer):  # a root (or loop) that is not a configured anchor
            problems.append("the signing certificate is not issued by a configured trust root "
                            f"(it chains to {issuer.subject.rfc4514_string()}, which is not one)")
            return problems
        chain.append(issuer)
        current = issuer
    problems.append("the certificate chain is too long")
    return problems


def _sha256():
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def _find_issuer(cert: x509.Certificate, pool: list[x509.Certificate]) -> x509.Certificate | None:
    for cand in pool:
        if cand.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(cand)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return cand
    return None


def _revocation(cert: x509.Certificate, issuer: x509.Certificate, crls: list[x509.CertificateRevocationList],
                at: dt.datetime) -> list[str]:
    for crl in crls:
        if crl.issuer != issuer.subject:
            continue
        try:
            if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                return [f"the revocation list of {issuer.subject.rfc4514_string()} has an invalid signature"]
        except (TypeError, ValueError):
            return [f"the revocation list of {issuer.subject.rfc4514_string()} cannot be checked"]
        revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if revoked is not None and revoked.revocation_date_utc <= at:
            return [f"certificate {cert.subject.rfc4514_string()} was revoked on "
                    f"{revoked.revocation_date_utc.isoformat()}, before the signing time"]
    return []
