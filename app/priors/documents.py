"""Prior report documents of a study: any SR (rendered from its content tree, whatever the template) and
encapsulated PDFs, read from the study database's store; and the report status they imply.

A document is 'final' when it is flagged VERIFIED (and, for an SR, COMPLETE); 'preliminary' otherwise.
AI results SRs and measurement reports are listed but never count as the study's report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import select

from app.db.database import Database
from app.db.models import Instance, Series, Study
from app.dicom_objects.classify import AI_RESULTS, REPORT, kind_of

SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
PDF_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
KOS_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
REPORT_TITLES_NOT_REPORTS = ("126000",)  # Imaging Measurement Report (TID 1500): measurements, not a report


@dataclass
class PriorDocument:
    sop_instance_uid: str
    kind: str  # "sr" | "pdf"
    title: str
    status: str  # "final" | "preliminary"
    date: str
    author: str
    text: str = ""
    pdf: bytes = b""
    role: str = "report"  # report | ai-results | measurements
    path: Path | None = field(default=None, repr=False)

    @property
    def is_report(self) -> bool:
        return self.role == "report"

    @property
    def role_label(self) -> str:
        return {"report": "report", "ai-results": "AI results - not a report",
                "measurements": "measurements - not a report"}[self.role]


def _flags(ds: Dataset) -> str:
    verified = str(ds.get("VerificationFlag", "")).upper() == "VERIFIED"
    complete = str(ds.get("CompletionFlag", "COMPLETE")).upper() == "COMPLETE"
    return "final" if verified and complete else "preliminary"


def _code(item: Dataset, keyword: str = "ConceptNameCodeSequence") -> str:
    seq = item.get(keyword)
    return str(seq[0].get("CodeMeaning", "")) if seq else ""


def render_sr(ds: Dataset) -> str:
    """Plain text of any SR content tree: headings for containers, 'name: value' for the rest."""
    lines: list[str] = []

    def walk(items, depth: int) -> None:
        for item in items or []:
            vt, name = str(item.get("ValueType", "")), _code(item)
            pad = "  " * depth
            if vt == "CONTAINER":
                lines.append(f"{pad}{name.upper()}" if depth == 0 else f"{pad}{name}:")
            elif vt == "TEXT":
                lines.append(f"{pad}{name}: {item.get('TextValue', '')}" if depth > 1 else f"{pad}{item.get('TextValue', '')}")
            elif vt == "CODE":
                lines.append(f"{pad}{name}: {_code(item, 'ConceptCodeSequence')}")
            elif vt == "NUM":
                mv = (item.get("MeasuredValueSequence") or [Dataset()])[0]
                unit = _code(mv, "MeasurementUnitsCodeSequence")
                lines.append(f"{pad}{name}: {mv.get('NumericValue', '')} {unit}".rstrip())
            elif vt in ("PNAME", "DATE", "TIME", "DATETIME", "UIDREF"):
                value = next((item.get(k) for k in ("PersonName", "Date", "Time", "DateTime", "UID") if k in item), "")
                lines.append(f"{pad}{name}: {value}")
            elif vt in ("IMAGE", "COMPOSITE"):
                ref = (item.get("ReferencedSOPSequence") or [Dataset()])[0]
                lines.append(f"{pad}{name or 'Reference'}: {ref.get('ReferencedSOPInstanceUID', '')}")
            if "ContentSequence" in item and vt == "CONTAINER":
                walk(item.ContentSequence, depth + 1)
                if depth <= 1:
                    lines.append("")

    lines.append(_code(ds).upper() or "STRUCTURED REPORT")
    walk(ds.get("ContentSequence"), 1)
    return "\n".join(lines).strip() + "\n"


def read_document(path: Path, sop_class_uid: str, series_description: str = "") -> PriorDocument | None:
    """The document in `path`, or None for objects that are not documents (KOS, images)."""
    uid = str(sop_class_uid)
    if uid == KOS_CLASS or not (uid.startswith(SR_PREFIX) or uid == PDF_CLASS):
        return None
    ds = pydicom.dcmread(path)
    date = str(ds.get("ContentDate", "") or ds.get("StudyDate", ""))
    observer = ""
    if ds.get("VerifyingObserverSequence"):
        observer = str(ds.VerifyingObserverSequence[0].get("VerifyingObserverName", ""))
    if uid == PDF_CLASS:
        from app.reports.export_encapsulated import extract_pdf

        return PriorDocument(str(ds.SOPInstanceUID), "pdf", str(ds.get("DocumentTitle", "") or "PDF report"),
                             _flags(ds) if "VerificationFlag" in ds else "preliminary", date, observer,
                             pdf=extract_pdf(ds), path=Path(path))
    kind = kind_of(uid, "SR", str(ds.get("SeriesDescription", series_description)))
    title_code = ds.ConceptNameCodeSequence[0].CodeValue if ds.get("ConceptNameCodeSequence") else ""
    role = "ai-results" if kind == AI_RESULTS else (
        "measurements" if kind != REPORT or title_code in REPORT_TITLES_NOT_REPORTS else "report")
    return PriorDocument(str(ds.SOPInstanceUID), "sr", _code(ds) or "Structured report", _flags(ds), date,
                         observer, text=render_sr(ds), role=role, path=Path(path))


def study_documents(db: Database, study_uid: str) -> list[PriorDocument]:
    """Every SR and encapsulated PDF of the study in the store, newest first; unreadable files are skipped."""
    with db.session() as s:
        rows = s.execute(
            select(Instance.sop_class_uid, Instance.file_path, Series.description)
            .join(Series, Series.id == Instance.series_db_id).join(Study, Study.id == Series.study_db_id)
            .where(Study.study_uid == study_uid)
            .where(Instance.sop_class_uid.like(f"{SR_PREFIX}%") | (Instance.sop_class_uid == PDF_CLASS))).all()
    out = []
    for sop_class, path, description in rows:
        try:
            doc = read_document(db.store_path(path), sop_class, description or "")
        except Exception:  # noqa: BLE001 - a damaged prior must not stop the others from showing
            continue
        if doc is not None:
            out.append(doc)
    return sorted(out, key=lambda d: d.date, reverse=True)


def study_documents_synced(db: Database, study_uid: str) -> tuple[list[PriorDocument], bool]:
    """`study_documents`, and the study's report status set from them when they hold a report (what
    opening a study does, off the GUI thread); (documents, whether the status was synced)."""
    docs = study_documents(db, study_uid)
    if docs and status_of(docs) != "none":
        sync_report_status(db, study_uid)
        return docs, True
    return docs, False


def status_of(documents: list[PriorDocument]) -> str:
    reports = [d for d in documents if d.is_report]
    if not reports:
        return "none"
    return "final" if any(d.status == "final" for d in reports) else "preliminary"


def sync_report_status(db: Database, study_uid: str) -> str:
    """Set the study's report status from its prior documents when no local report exists; returns it."""
    import app.reports.models  # noqa: F401  (registers the report table)
    from app.reports.models import Report

    with db.session() as s:  # read only: opening or retrieving a study takes no write lock unless it must write
        current = s.scalar(select(Study.report_status).where(Study.study_uid == study_uid))
        if s.scalar(select(Report.id).where(Report.study_uid == study_uid).limit(1)) is not None:
            return str(current or "none")
    if current is None:
        return "none"
    status = status_of(study_documents(db, study_uid))
    if status == "none" or status == current:
        return str(current)

    def write(s) -> str:  # noqa: ANN001 - a Session
        study = s.scalar(select(Study).where(Study.study_uid == study_uid))
        if study is None:
            return "none"
        if study.report_status != status:
            study.report_status = status
        return str(study.report_status)

    # read and update in one write transaction: a deferred one fails at once if an import commits in between
    return db.run_write(write)
