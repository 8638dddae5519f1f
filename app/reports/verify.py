"""Checks that a report is exactly what was signed: stored versions, exported SR, signed PDF (plain or
DICOM-encapsulated). Every check returns a `Verification` with plain-language findings."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from app.reports.content import ReportContent
from app.reports.keys import certificate_fingerprint
from app.reports.signing import verify_bytes


@dataclass
class Verification:
    subject: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signer: str = ""
    signed_at: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = (f"VALID: {self.subject} signed by {self.signer or '?'} at {self.signed_at or '?'}" if self.ok
                else f"TAMPERED OR INVALID: {self.subject}")
        lines = [head] + [f"  problem: {p}" for p in self.problems] + [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def check_signed_payload(result: Verification, canonical: bytes, signature: bytes, cert_der: bytes,
                         pinned_cert_sha256: str | set[str] | None = None) -> dict[str, Any] | None:
    """Signature over the canonical bytes; returns the decoded payload (None when unreadable)."""
    try:
        payload = json.loads(canonical.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        result.problems.append(f"signed content cannot be read ({exc})")
        return None
    signed_at = payload.get("signed_at", "")
    result.signed_at = signed_at
    try:
        at = dt.datetime.fromisoformat(signed_at)
    except ValueError:
        at = None
        result.problems.append(f"signing time {signed_at!r} is not a valid time")
    check = verify_bytes(cert_der, canonical, signature, at)
    result.signer = check.signer or payload.get("signer", {}).get("name", "")
    if not check.valid:
        result.problems.append(check.reason)
    if pinned_cert_sha256 is not None:
        try:
            fp = certificate_fingerprint(cert_der)
        except ValueError:
            fp = ""
        allowed = {pinned_cert_sha256} if isinstance(pinned_cert_sha256, str) else pinned_cert_sha256
        if fp not in allowed:
            result.problems.append("signed with a certificate that is not the one registered for the signer")
    return payload


def compare_sections(result: Verification, signed: dict[str, Any], actual: ReportContent, where: str,
                     *, dicom_text: bool = False) -> None:
    """Each section of `actual` against the signed text. `dicom_text`: `actual` was read from DICOM text values
    (UT), whose trailing spaces are padding and not significant (PS3.5 6.2), so a section that ends in spaces
    (typed before signing) compares without them; every other character still counts."""
    signed_content = ReportContent.from_dict(signed)
    for key in sorted(set(signed_content.to_dict()) | set(actual.to_dict())):
        want, got = signed_content.get(key), actual.get(key)
        if dicom_text:
            want, got = want.rstrip(" "), got.rstrip(" ")
        if want != got:
            result.problems.append(f"{where}: section '{key}' differs from the signed text")


def verify_stored_version(database, version_id: int) -> Verification:
    """A stored version: signature valid, and the row's text/ids equal what was signed."""
    from sqlalchemy import select

    from app.reports.models import ReportVersion, User
    from app.reports.views import study_identity

    result = Verification(f"stored report version id={version_id}")
    with database.session() as s:
        v = s.get(ReportVersion, version_id)
        if v is None:
            result.problems.append("no such report version")
            return result
        result.subject = f"stored report {v.report_id} version {v.version_no} ({v.kind}) of study {v.report.study_uid}"
        if v.status != "final" or v.signature is None:
            result.problems.append(f"version is not signed (status {v.status})")
            return result
        sig = v.signature
        signer = s.scalar(select(User).where(User.id == sig.signer_id))
        pins = ({signer.cert_sha256, *(signer.cert_history or [])} - {""}) if signer else set()
        payload = check_signed_payload(result, sig.canonical, sig.signature, sig.certificate_der, pins or None)
        if payload is None:
            return result
        try:
            stored = ReportContent.from_dict(v.sections)
        except ValueError as exc:
            result.problems.append(f"stored sections unreadable: {exc}")
            return result
        compare_sections(result, payload.get("sections", {}), stored, "stored version")
        for name, signed_value, actual in (
            ("version number", payload.get("version_no"), v.version_no),
            ("kind", payload.get("kind"), v.kind),
            ("report id", payload.get("report_id"), v.report_id),
            ("signing time", payload.get("signed_at"), v.signed_at),
            ("study", payload.get("study", {}).get("uid"), v.report.study_uid),
        ):
            if signed_value != actual:
                result.problems.append(f"stored {name} {actual!r} differs from the signed {signed_value!r}")
        try:
            ident = study_identity(s, v.report.study_uid)
            if (ident.patient_id, ident.patient_name) != (payload["patient"]["id"], payload["patient"]["name"]):
                result.notes.append("patient identifiers in the study database changed since signing")
        except ValueError:
            result.notes.append("the study is no longer in the database")
    return result


def verify_pdf(data: bytes, trusted_cert_der: bytes | None = None, subject: str = "PDF report") -> Verification:
    """pyHanko validation: intact, valid, covering the whole file; trust anchored in the signer's
    registered certificate when given (self-signed certificates are pinned, not chained to a CA)."""
    import io

    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    result = Verification(subject)
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        sigs = reader.embedded_signatures
    except Exception as exc:  # noqa: BLE001 - pyHanko raises many types for a damaged file
        result.problems.append(f"PDF cannot be read: {exc}")
        return result
    if not sigs:
        result.problems.append("the PDF carries no signature")
        return result
    sig = sigs[0]
    try:
        signer_cert = sig.signer_cert
        roots = [asn1_x509.Certificate.load(trusted_cert_der)] if trusted_cert_der else [signer_cert]
        status = validate_pdf_signature(sig, ValidationContext(trust_roots=roots, allow_fetching=False))
    except Exception as exc:  # noqa: BLE001
        result.problems.append(f"signature cannot be validated: {exc}")
        return result
    result.signer = signer_cert.subject.human_friendly
    result.signed_at = str(status.signer_reported_dt or "")
    if not status.intact:
        result.problems.append("the PDF was altered after signing (digest mismatch)")
    if not status.valid:
        result.problems.append("the cryptographic signature is not valid")
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        result.problems.append(f"the signature does not cover the whole file ({status.coverage.name}): "
                               "content was added after signing")
    if trusted_cert_der and not status.trusted:
        result.problems.append("signed with a certificate other than the signer's registered one")
    if not trusted_cert_der:
        result.notes.append("self-signed certificate: trust it by comparing its fingerprint with the signer's")
    return result
