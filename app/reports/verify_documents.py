"""`radstation verify` for files and stored versions: every check, and never an exception.

A report document is VALID only when all of these hold:
- DICOM objects (SR, encapsulated PDF): every DICOM Digital Signature verifies over the stored bytes, every
  signable element is covered by a signature, the file meta matches the signed SOP UIDs;
- the SR's RadStation payload (canonical report text, signed separately) matches its content tree;
- the encapsulated PDF's document is a PAdES-signed PDF that covers the whole file, by the same key;
- with the database: the certificate is registered to a user who, by the audit log, held a signing role
  and had that certificate registered at the signing time; the audit log itself verifies (keyed).
Anything unreadable or unexpected becomes a problem line (TAMPERED OR INVALID), not a traceback.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from app.dicom_objects.classify import KOS_CLASS
from app.reports.verify import Verification, check_signed_payload, compare_sections, verify_pdf


def _dicom_time(text: str) -> str:
    """DICOM DT (YYYYMMDDHHMMSS[.ffffff][+ZZZZ]) as ISO text ('' when unreadable)."""
    text = text.strip()
    try:
        base = dt.datetime.strptime(text[:14], "%Y%m%d%H%M%S")
    except ValueError:
        return ""
    tz = dt.UTC
    for sign in ("+", "-"):
        if sign in text[14:]:
            off = text[14:].split(sign, 1)[1]
            try:
                mins = int(off[:2]) * 60 + int(off[2:4])
            except ValueError:
                return ""
            tz = dt.timezone(dt.timedelta(minutes=mins if sign == "+" else -mins))
    return base.replace(tzinfo=tz).isoformat()


def _fingerprint(cert_der: bytes) -> str:
    return hashlib.sha256(cert_der).hexdigest()


def _signer_of(db, cert_fp: str) -> str | None:
    """The user a certificate is (or was) registered to, from the user table."""
    from sqlalchemy import select

    from app.reports.models import User

    with db.session() as s:
        for u in s.scalars(select(User)):
            if u.cert_sha256 == cert_fp or cert_fp in (u.cert_history or []):
                return u.username
    return None


NOT_ON_RECORD = ("this document is not one RadStation stored at a signing: no `sign` entry of the audit log "
                 "records it (re-signed after an edit, back-dated, or made outside the sign-off)")


def check_authority(result: Verification, db, cert_der: bytes, signed_at: str, document: bytes | None = None,
                    sign_seq: int | None = None, signature_value: bytes | None = None) -> None:
    """Registered certificate + signing role at the signing time, from the (verified) audit log. The `sign`
    entry that recorded `document` (or `sign_seq`) orders the replay exactly.

    A document file must be on record: its bytes, or (for a DICOM object a PACS re-encoded) its signature
    value, recorded by a `sign` entry. Otherwise anyone who still holds a key, e.g. a radiologist since
    demoted or one re-signing an edited copy of their report, could make a document that the signing time it
    claims would make look authorised."""
    if db is None:
        result.notes.append("no database: the signer's registration and authority were not checked")
        return
    from app.reports.audit import verify_chain
    from app.reports.authority import authority_at, sign_entry_for

    fp = _fingerprint(cert_der)
    username = _signer_of(db, fp)
    if username is None:
        result.problems.append("signed with a certificate not registered for any user of this database")
        return
    with db.session() as s:
        chain = verify_chain(s)
        if not chain.ok:
            result.problems.append("the audit log fails its own check, so the signer's authority cannot be "
                                   "established (run `radstation audit verify`)")
        if sign_seq is None and document is not None:
            entry = sign_entry_for(s, hashlib.sha256(document).hexdigest())
            if entry is None and signature_value:
                entry = sign_entry_for(s, hashlib.sha256(signature_value).hexdigest())
            if entry is None:
                result.problems.append(NOT_ON_RECORD)
            else:
                sign_seq = entry.seq
                if entry.username != username:
                    result.problems.append(f"the audit log records {entry.username!r} as the signer of this "
                                           f"document, the certificate belongs to {username!r}")
        result.problems.extend(authority_at(s, username, fp, signed_at, before_seq=sign_seq))
    from app.reports.trust import check_certificate

    try:
        at = dt.datetime.fromisoformat(signed_at)
    except ValueError:
        return
    result.problems.extend(check_certificate(cert_der, at))


def _payload_block(ds) -> tuple[bytes, bytes, bytes] | None:
    from app.reports.export_sr import PRIVATE_CREATOR, PRIVATE_GROUP

    try:
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
        lengths = list(block[0x05].value)
        return tuple(bytes(block[i].value)[:n] for i, n in zip((0x01, 0x02, 0x03), lengths, strict=True))
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def _check_sr_content(result: Verification, ds, dicom_cert: bytes) -> None:
    """The SR's own RadStation payload: same key, and its text and identifiers match the content tree."""
    from app.reports.export_sr import sr_content

    block = _payload_block(ds)
    if block is None:
        result.problems.append("the SR carries no RadStation report payload (not made by RadStation, or removed)")
        return
    canonical, signature, cert = block
    if cert != dicom_cert:
        result.problems.append("the report payload and the DICOM signature were made with different keys")
    payload = check_signed_payload(result, canonical, signature, cert)
    if payload is None:
        return
    try:
        compare_sections(result, payload.get("sections", {}), sr_content(ds), "SR", dicom_text=True)
        checks = (("Study Instance UID", ds.get("StudyInstanceUID", ""), payload["study"]["uid"]),
                  ("Patient ID", ds.get("PatientID", ""), payload["patient"]["id"]),
                  ("Patient Name", str(ds.get("PatientName", "")), payload["patient"]["name"]),
                  ("Accession Number", ds.get("AccessionNumber", ""), payload["study"]["accession"]))
    except (AttributeError, ValueError, IndexError, KeyError, TypeError) as exc:
        result.problems.append(f"SR content cannot be compared with the signed report: {exc}")
        return
    for name, actual, signed in checks:
        if str(actual) != str(signed):
            result.problems.append(f"{name} {actual!r} differs from the signed {signed!r}")
    if ds.get("VerificationFlag") != "VERIFIED":
        result.problems.append("SR is not flagged VERIFIED")


def verify_dicom_document(data: bytes, db=None, subject: str = "DICOM object") -> Verification:
    """A DICOM-signed SR or encapsulated PDF."""
    from app.reports.dicom_signature import verify_dicom_bytes

    result = Verification(subject)
    check = verify_dicom_bytes(data)
    result.problems.extend(check.problems)
    ds = check.dataset
    if ds is None or not check.signatures:
        return result
    first = check.signatures[0]
    certs = {s.certificate_der for s in check.signatures}
    if len(certs) > 1:
        result.problems.append("the object is signed with more than one key")
    result.signed_at = _dicom_time(first.signed_at)
    result.signer = _cert_name(first.certificate_der)
    if not result.signed_at:
        result.problems.append(f"digital signature date/time {first.signed_at!r} cannot be read")
    if first.timestamp:
        from app.reports.timestamps import check_dicom_timestamp

        stamped, ts_problems = check_dicom_timestamp(first.timestamp, first.signature_as_signed)
        result.problems.extend(ts_problems)
        if stamped is not None and not ts_problems:
            result.signed_at = stamped.isoformat()
            result.notes.append("signing time certified by the time-stamp authority")
    signed_at, signer = result.signed_at, result.signer
    modality = str(ds.get("Modality", ""))
    if modality == "SR":
        result.subject = f"{subject} (DICOM SR {ds.get('SOPInstanceUID', '?')})"
        _check_sr_content(result, ds, first.certificate_der)
    elif ds.get("MIMETypeOfEncapsulatedDocument") == "application/pdf":
        result.subject = f"{subject} (DICOM encapsulated PDF {ds.get('SOPInstanceUID', '?')})"
        _check_encapsulated(result, ds, first.certificate_der)
    elif str(ds.get("SOPClassUID", "")) == KOS_CLASS:
        result.subject = f"{subject} (DICOM key object selection {ds.get('SOPInstanceUID', '?')})"
    else:
        result.problems.append("not a report (expected a DICOM SR, an encapsulated PDF or a key object "
                               "selection)")
    result.signed_at, result.signer = signed_at, signer  # the DICOM signature's (or the TSA's) time and signer
    if result.signed_at:
        check_authority(result, db, first.certificate_der, result.signed_at, document=data,
                        signature_value=first.signature if first.valid else None)
    return result


def _check_encapsulated(result: Verification, ds, dicom_cert: bytes) -> None:
    from app.reports.export_encapsulated import extract_pdf

    try:
        pdf = extract_pdf(ds)
    except (ValueError, AttributeError, TypeError) as exc:
        result.problems.append(f"the encapsulated document cannot be read: {exc}")
        return
    inner = verify_pdf(pdf, dicom_cert, subject="encapsulated PDF")
    result.problems.extend(f"encapsulated PDF: {p}" for p in inner.problems)


def _cert_name(cert_der: bytes) -> str:
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(cert_der)
        return ", ".join(str(a.value) for a in cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME))
    except ValueError:
        return "?"


def verify_pdf_document(data: bytes, db=None, subject: str = "PDF") -> Verification:
    """A PAdES-signed PDF: intact, whole-file coverage, and a registered, authorised signer."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        sigs = PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures
        cert = sigs[0].signer_cert.dump() if sigs else None
    except Exception:  # noqa: BLE001 - verify_pdf reports the damage itself
        cert = None
    result = verify_pdf(data, cert, subject=subject)
    if cert is None:
        return result
    result.notes = [n for n in result.notes if "self-signed" not in n]
    signed_at = _pdf_signing_time(data)
    if not signed_at:
        result.problems.append("the PDF signature carries no signing time")
        return result
    result.signed_at = signed_at
    check_authority(result, db, cert, signed_at, document=data)
    return result


def _pdf_signing_time(data: bytes) -> str:
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        sig = PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures[0]
        when = sig.self_reported_timestamp
    except Exception:  # noqa: BLE001
        return ""
    if when is None:
        return ""
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).isoformat()


def verify_file(path: Path, db=None) -> Verification:
    """Whatever `path` holds (PDF, DICOM SR, encapsulated PDF); never raises."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Verification(str(path), problems=[f"cannot read the file: {exc}"])
    try:
        if data.startswith(b"%PDF"):
            return verify_pdf_document(data, db, subject=f"PDF {path}")
        return verify_dicom_document(data, db, subject=str(path))
    except Exception as exc:  # noqa: BLE001 - the promise is a verdict, never a traceback
        return Verification(str(path), problems=[f"cannot be checked ({type(exc).__name__}: {exc})"])


def verify_version(db, version_id: int) -> Verification:
    """A stored version: its signature row, and every document stored with it, against the audit log."""
    from app.reports.verify import verify_stored_version

    try:
        result = verify_stored_version(db, version_id)
        if result.ok or result.problems[:1] != ["no such report version"]:
            _check_stored_artefacts(result, db, version_id)
        return result
    except Exception as exc:  # noqa: BLE001
        return Verification(f"stored report version id={version_id}",
                            problems=[f"cannot be checked ({type(exc).__name__}: {exc})"])


def _check_stored_artefacts(result: Verification, db, version_id: int) -> None:
    from sqlalchemy import select

    from app.reports.artefacts import KIND_KOS, KIND_PDF_DICOM, KIND_SIGNED_PDF, KIND_SR
    from app.reports.canonical import sha256_hex
    from app.reports.models import AuditEntry, ReportArtifact, ReportSignature, ReportVersion, User

    with db.session() as s:
        v = s.get(ReportVersion, version_id)
        sig = s.scalar(select(ReportSignature).where(ReportSignature.version_id == version_id))
        if v is None or sig is None:
            return
        signer = s.get(User, sig.signer_id)
        arts = {a.kind: a for a in s.scalars(select(ReportArtifact).where(ReportArtifact.version_id == version_id))}
        sign_entries = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "sign",
                                                               AuditEntry.object_type == "report_version",
                                                               AuditEntry.object_id == str(version_id))))
        try:
            payload = json.loads(sig.canonical.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            payload = {}
        signer_username = signer.username if signer else ""
        signed_name = (payload.get("signer") or {}).get("username") if isinstance(payload, dict) else None
        if signed_name != signer_username:
            result.problems.append(f"the signature row names {signer_username or 'no user'} but was signed by "
                                   f"{signed_name!r}")
        if len(sign_entries) != 1:
            result.problems.append(f"the audit log has {len(sign_entries)} sign entries for this version "
                                   "(expected exactly one)")
            recorded: dict = {}
            sign_seq = None
        else:
            try:
                details = json.loads(sign_entries[0].details)
            except ValueError:
                details = {}
            recorded = details.get("artefacts") or {}
            sign_seq = sign_entries[0].seq
            if details.get("sha256") != sha256_hex(sig.canonical):
                result.problems.append("the signed content differs from what the audit log recorded at signing")
            if sign_entries[0].username != signed_name:
                result.problems.append(f"the audit log records {sign_entries[0].username!r} as signer, the "
                                       f"signature says {signed_name!r}")
        check_authority(result, db, sig.certificate_der, sig.signed_at, sign_seq=sign_seq)
        optional = [KIND_KOS] if KIND_KOS in arts or KIND_KOS in recorded else []
        for kind in (KIND_SIGNED_PDF, KIND_SR, KIND_PDF_DICOM, *optional):
            art = arts.get(kind)
            if art is None:
                if recorded:
                    result.problems.append(f"the stored {kind} recorded at signing is missing")
                else:
                    result.notes.append(f"no stored {kind} (signed by an older RadStation)")
                continue
            digest = sha256_hex(art.data)
            if recorded and recorded.get(kind) != digest:
                result.problems.append(f"the stored {kind} differs from the one recorded at signing")
            sub = (verify_pdf_document(art.data, None, subject=kind) if kind == KIND_SIGNED_PDF
                   else verify_dicom_document(art.data, None, subject=kind))
            result.problems.extend(f"stored {kind}: {p}" for p in sub.problems)
            cert = _artefact_cert(art.data, kind)
            if cert is not None and cert != sig.certificate_der:
                result.problems.append(f"the stored {kind} is signed with another key than the report")


def _artefact_cert(data: bytes, kind: str) -> bytes | None:
    if kind == "signed_pdf":
        import io

        from pyhanko.pdf_utils.reader import PdfFileReader

        try:
            return PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures[0].signer_cert.dump()
        except Exception:  # noqa: BLE001
            return None
    from app.reports.dicom_signature import verify_dicom_bytes

    check = verify_dicom_bytes(data)
    return check.signatures[0].certificate_der if check.signatures else None
