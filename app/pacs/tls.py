"""DICOM TLS (PS3.15 Annex B, BCP 195 profile): SSL contexts for the Storage SCP and DIMSE clients.

Both sides use TLS 1.2 or later with the default (forward-secret, AEAD) ciphers. The SCP asks for a
client certificate signed by one of the site's CAs unless a site turns that off; a client checks the
PACS's certificate against the configured CAs (or the system store when none are given) and presents
its own certificate when the PACS wants mutual TLS. Private key passwords come from the secret store.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from app.pacs.errors import PacsConfigError

PasswordSource = Callable[[], str | None]


def _load_chain(ctx: ssl.SSLContext, certificate: str, private_key: str, password: PasswordSource | None) -> None:
    try:
        ctx.load_cert_chain(certificate, private_key or None, password=(lambda: password() or "") if password else None)
    except ssl.SSLError as exc:
        raise PacsConfigError(
            f"TLS certificate {certificate} / key {private_key}: cannot be loaded ({exc.reason or exc}); "
            "check that they match and that the key password is stored"
        ) from exc
    except OSError as exc:
        raise PacsConfigError(f"TLS certificate or key cannot be read: {exc.strerror or exc}") from exc


def server_context(certificate: str, private_key: str, ca_certificates: str, *, require_client_certificate: bool,
                   password: PasswordSource | None = None) -> ssl.SSLContext:
    """The Storage SCP's context: our certificate, and the CAs client certificates must chain to."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, certificate, private_key, password)
    if ca_certificates:
        try:
            ctx.load_verify_locations(cafile=ca_certificates)
        except (ssl.SSLError, OSError) as exc:
            raise PacsConfigError(f"TLS CA certificates {ca_certificates} cannot be loaded: {exc}") from exc
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_OPTIONAL if ca_certificates \
        else ssl.CERT_NONE
    return ctx


def client_context(ca_certificates: str, certificate: str = "", private_key: str = "", *,
                   check_hostname: bool = True, password: PasswordSource | None = None) -> ssl.SSLContext:
    """A DIMSE client's context: verify the PACS, present our certificate when one is configured."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if ca_certificates:
            ctx.load_verify_locations(cafile=ca_certificates)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    except (ssl.SSLError, OSError) as exc:
        raise PacsConfigError(f"TLS CA certificates {ca_certificates} cannot be loaded: {exc}") from exc
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if certificate:
        _load_chain(ctx, certificate, private_key, password)
    return ctx


def peer_common_name(sock: object) -> str:
    """The verified peer certificate's subject common name ('' when there is none)."""
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return ""
    try:
        cert = getpeercert()
    except (ValueError, ssl.SSLError):
        return ""
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""
