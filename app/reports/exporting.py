"""One entry point for writing a report version to a file in any format (used by the CLI and the editor)."""

from __future__ import annotations

import json
from pathlib import Path

from app.export_files import write_private
from app.reports.service import ReportError, ReportService
from app.reports.users import AuthSession

FORMATS: dict[str, tuple[str, str]] = {  # format -> (file-dialog label, suffix)
    "sr": ("DICOM Structured Report", ".dcm"),
    "pdf": ("Signed PDF", ".pdf"),
    "pdf-dicom": ("DICOM Encapsulated PDF", ".dcm"),
    "text": ("Plain text", ".txt"),
    "fhir": ("FHIR R4 DiagnosticReport (JSON)", ".json"),
    "fhir-bundle": ("FHIR R4 transaction Bundle: report, findings, study, patient (JSON)", ".json"),
}


def signed_document(service: ReportService, version_id: int, fmt: str) -> bytes:
    """The DICOM-signed SR / encapsulated PDF or the PAdES PDF made when the version was signed."""
    from app.reports.artefacts import KIND_PDF_DICOM, KIND_SIGNED_PDF, KIND_SR

    kind = {"sr": KIND_SR, "pdf": KIND_SIGNED_PDF, "pdf-dicom": KIND_PDF_DICOM}[fmt]
    data = service.artefact(version_id, kind)
    if data is None:
        if service.version(version_id).status != "final":
            raise ReportError(f"only a signed version can be exported as {FORMATS[fmt][0]}; sign it first")
        raise ReportError(f"this signed version has no stored {FORMATS[fmt][0]} (signed by an older RadStation "
                          "or interrupted); make an addendum and sign it to issue signed documents")
    return data


def export_version(service: ReportService, version_id: int, fmt: str, out: Path,
                   user: AuthSession | None = None) -> Path:
    """Write `fmt` of the version to `out` and record the export in the audit log."""
    from app.reports.document import build_document

    if fmt not in FORMATS:
        raise ReportError(f"format must be one of {', '.join(FORMATS)}")
    doc = build_document(service, version_id)
    if fmt in ("sr", "pdf", "pdf-dicom"):
        write_private(out, signed_document(service, version_id, fmt))
    elif fmt == "text":
        from app.reports.export_text import export_text

        write_private(out, export_text(doc))
    elif fmt == "fhir":
        from app.reports.export_fhir import export_fhir

        write_private(out, json.dumps(export_fhir(doc, service.signed_pdf(version_id)), indent=2,
                                      ensure_ascii=False))
    else:
        from app.reports.export_fhir import report_bundle
        bundle = report_bundle(doc, service.signed_pdf(version_id),
                               patient_system=str(service.settings.get("fhir_patient_id_system") or ""))
        write_private(out, json.dumps(bundle, indent=2, ensure_ascii=False))
    service.record_export(version_id, user, fmt, str(out))
    return out
