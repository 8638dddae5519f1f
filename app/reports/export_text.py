"""Plain-text and FHIR R4 DiagnosticReport exports."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from app.reports.document import ReportDocument

FHIR_STATUS = {"draft": "preliminary", "preliminary": "preliminary", "final": "final"}


def _pn(name: str) -> str:
    parts = name.split("^")
    return " ".join(p for p in (parts[1:2] + parts[:1]) if p) if "^" in name else name


def export_text(doc: ReportDocument) -> str:
    v, ident = doc.version, doc.identity
    lines = [
        f"{doc.title.upper()} REPORT" + (f" — {v.kind.upper()} (version {v.version_no})" if v.kind != "original" else ""),
        f"Patient: {_pn(ident.patient_name)}  ID: {ident.patient_id}  Birth date: {ident.patient_birth_date}  "
        f"Sex: {ident.patient_sex}",
        f"Study: {ident.study_description}  Date: {ident.study_date}  Accession: {ident.accession}",
        f"Study UID: {ident.study_uid}",
        "",
        v.content.as_text().rstrip(),
        "",
    ]
    if v.ai_generated and v.ai_draft:
        state = "edited" if v.human_edited else ("accepted" if v.ai_accepted else "NOT reviewed")
        lines.append(f"Drafted with AI assistance ({v.ai_draft.get('engine', '?')}); draft {state} by a radiologist.")
    if doc.signed:
        lines.append(f"Electronically signed by {v.signature.get('signer_name') or v.signer} at {v.signed_at}")
    else:
        lines.append(f"STATUS: {v.status.upper()} — NOT SIGNED")
    return "\n".join(lines) + "\n"


def export_fhir(doc: ReportDocument, pdf: bytes | None = None) -> dict[str, Any]:
    """A FHIR R4 DiagnosticReport resource (JSON-ready dict) with text and, if given, the PDF."""
    v, ident = doc.version, doc.identity
    status = FHIR_STATUS.get(v.status, "preliminary")
    if v.status == "final" and v.kind in ("amendment", "addendum"):
        status = "amended" if v.kind == "amendment" else "appended"
    text = export_text(doc)
    presented = [{"contentType": "text/plain; charset=utf-8", "language": "en",
                  "data": base64.b64encode(text.encode("utf-8")).decode("ascii"), "title": "Report (text)"}]
    if pdf:
        presented.append({"contentType": "application/pdf", "data": base64.b64encode(pdf).decode("ascii"),
                          "title": "Report (signed PDF)"})
    effective = ""
    if ident.study_date:
        d = dt.datetime.strptime(ident.study_date, "%Y%m%d")
        effective = d.date().isoformat()
        if len(ident.study_time) >= 4 and ident.study_time[:6].isdigit():
            t = ident.study_time.ljust(6, "0")[:6]
            effective = f"{effective}T{t[:2]}:{t[2:4]}:{t[4:6]}Z"
    res: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": f"report-{v.report_id}-v{v.version_no}",
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{doc.uid('sr')}"}],
        "status": status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD",
                                  "display": "Radiology"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "18748-4",
                             "display": "Diagnostic imaging study"}],
                 "text": doc.title},
        "subject": {"identifier": {"value": ident.patient_id}, "display": _pn(ident.patient_name)},
        "imagingStudy": [{"identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{ident.study_uid}"},
                          "display": ident.study_description or doc.title}],
        "conclusion": v.content.get("impression"),
        "presentedForm": presented,
    }
    if effective:
        res["effectiveDateTime"] = effective
    if v.signed_at:
        res["issued"] = v.signed_at
        res["resultsInterpreter"] = [{"display": v.signature.get("signer_name") or v.signer}]
    if ident.accession:
        res["identifier"].append({"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                       "code": "ACSN"}]}, "value": ident.accession})
    return res
