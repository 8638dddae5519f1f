"""One entry point for writing a report version to a file in any format (used by the CLI and the editor)."""

from __future__ import annotations

import json
from pathlib import Path

from app.reports.service import ReportError, ReportService
from app.reports.users import AuthSession

FORMATS: dict[str, tuple[str, str]] = {  # format -> (file-dialog label, suffix)
    "sr": ("DICOM Structured Report", ".dcm"),
    "pdf": ("Signed PDF", ".pdf"),
    "pdf-dicom": ("DICOM Encapsulated PDF", ".dcm"),
    "text": ("Plain text", ".txt"),
    "fhir": ("FHIR R4 DiagnosticReport (JSON)", ".json"),
}


def export_version(service: ReportService, version_id: int, fmt: str, out: Path,
                   user: AuthSession | None = None) -> Path:
    """Write `fmt` of the version to `out` and record the export in the audit log."""
    from app.reports.document import build_document

    if fmt not in FORMATS:
        raise ReportError(f"format must be one of {', '.join(FORMATS)}")
    doc = build_document(service, version_id)
    if fmt == "sr":
        from app.reports.export_sr import write_sr

        write_sr(doc, out)
    elif fmt in ("pdf", "pdf-dicom"):
        pdf = service.signed_pdf(version_id)
        if pdf is None:
            raise ReportError("only a signed version has a signed PDF")
        if fmt == "pdf":
            out.write_bytes(pdf)
        else:
            from app.reports.export_encapsulated import build_encapsulated_pdf

            build_encapsulated_pdf(doc, pdf).save_as(out, enforce_file_format=True)
    elif fmt == "text":
        from app.reports.export_text import export_text

        out.write_text(export_text(doc), encoding="utf-8")
    else:
        from app.reports.export_text import export_fhir

        out.write_text(json.dumps(export_fhir(doc, service.signed_pdf(version_id)), indent=2, ensure_ascii=False),
                       encoding="utf-8")
    service.record_export(version_id, user, fmt, str(out))
    return out
