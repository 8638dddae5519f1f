"""RFC 3161 time stamps from the site's time-stamp authority (TSA), on every signature made at sign-off.

With the `tsa_url` setting, the PAdES PDF gets a signature time stamp (PAdES B-T) and each DICOM signature a
Certified Timestamp (type CMS_TSP) over its Signature value, as PS3.15 and DCMTK's dcmsign expect. The
TSA's certificate must chain to `tsa_trust_roots` (PEM/DER files; default: the signing trust roots) for
`verify` to take the stamped time as the signing time. No `tsa_url`: signatures carry the workstation's
clock only (as signed by the signer).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path

CMS_TSP = "CMS_TSP"


class TimestampError(ValueError):
    """The TSA cannot be reached, refused the request, or its token does not check."""


def tsa_timestamper(settings=None):
    """pyHanko's HTTP time stamper for the configured TSA, or None."""
    from app.settings import current_settings

    url = (settings or current_settings()).get("tsa_url") or ""
    if not url:
        return None
    from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper

    return RequestsHTTPTimeStamper(url, timeout=10)


def dicom_timestamper(stamper) -> Callable[[bytes], tuple[str, bytes]]:
    """For sign_dataset: a CMS time stamp token over SHA-256 of the DICOM Signature value."""
    def stamp(signature: bytes) -> tuple[str, bytes]:
        try:
            token = asyncio.run(stamper.async_timestamp(hashlib.sha256(signature).digest(), "sha256"))
        except Exception as exc:  # noqa: BLE001 - network and TSA errors come in many types
            raise TimestampError(f"the time-stamp authority did not stamp the signature: {exc}") from exc
        return CMS_TSP, token.dump()
    return stamp


def _tsa_roots() -> list:
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization

    from app.reports.trust import _configured, _load_certs, trust_anchors

    paths = _configured("tsa_trust_roots", ())
    certs = []
    for path in paths:
        try:
            certs += _load_certs(Path(path))
        except (OSError, ValueError):
            continue
    if not paths:
        certs, _ = trust_anchors()
    return [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in certs]


def check_dicom_timestamp(token: bytes, signature: bytes) -> tuple[dt.datetime | None, list[str]]:
    """The stamped time of a DICOM Certified Timestamp, and problems (imprint, TSA signature, trust)."""
    from asn1crypto import cms
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    from pyhanko_certvalidator import ValidationContext

    try:
        info = cms.ContentInfo.load(token)
        signed_data = info["content"]
        imprint = hashlib.sha256(signature).digest()
        status = asyncio.run(validate_tst_signed_data(
            signed_data, ValidationContext(trust_roots=_tsa_roots(), allow_fetching=False),
            lambda algo: hashlib.new(algo, signature).digest() if algo != "sha256" else imprint))
    except Exception as exc:  # noqa: BLE001 - a damaged token is a finding, not a crash
        return None, [f"the certified timestamp cannot be checked: {exc}"]
    problems = []
    if not status.get("intact", False):
        problems.append("the certified timestamp is not over this signature")
    if not status.get("valid", False):
        problems.append("the certified timestamp's own signature is not valid")
    if status.get("trust_problem_indic") is not None:
        problems.append("the time-stamp authority is not trusted (tsa_trust_roots)")
    return status.get("timestamp"), problems
