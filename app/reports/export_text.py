"""Plain-text export of a report (also the text a FHIR DiagnosticReport carries, app.reports.export_fhir)."""

from __future__ import annotations

from app.reports.document import ReportDocument


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
