"""Everything an export needs about one report version, gathered once from the database."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select

from app.db.models import Instance, Series, Study
from app.dicom_objects.classify import ACQUIRED, kind_of_file
from app.reports.errors import ReportError
from app.reports.templates import TemplateError, load_template
from app.reports.views import StudyIdentity, VersionView

MAX_EVIDENCE = 2000
MAX_KEY_IMAGES = 8


def stable_uid(*parts: str) -> str:
    """A '2.25.' UID (ISO/IEC 9834-8 integer form) derived from `parts`: same inputs, same UID."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


@dataclass(frozen=True)
class EvidenceRef:
    study_uid: str
    series_uid: str
    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class ReportDocument:
    version: VersionView
    identity: StudyIdentity
    evidence: tuple[EvidenceRef, ...]
    key_images: tuple[EvidenceRef, ...]
    title: str
    procedure_code: dict[str, str]
    institution: str = "RadStation"
    supersedes_version_no: int | None = None

    @property
    def signed(self) -> bool:
        return self.version.status == "final" and bool(self.version.signature)

    def uid(self, what: str) -> str:
        """Deterministic UIDs per report version and document kind: re-exports replace, never duplicate."""
        v = self.version
        return stable_uid(self.identity.study_uid, str(v.report_id), str(v.version_no), what)

    def previous_uid(self, what: str, version_no: int) -> str:
        v = self.version
        return stable_uid(self.identity.study_uid, str(v.report_id), str(version_no), what)


class ReportSource(Protocol):
    """What a document is built from: the report service (app.reports.service.ReportService), named here
    by what is used so that the documents and exports do not import the service (which imports them)."""

    db: Any

    def version(self, version_id: int) -> VersionView: ...

    def identity(self, study_uid: str) -> StudyIdentity: ...


def build_document(service: ReportSource, version_id: int,
                   key_images: list[str] | None = None, version: VersionView | None = None) -> ReportDocument:
    """Collect version, identifiers and referenced images; `key_images` are SOP Instance UIDs to show.
    `version` overrides the stored version (signing builds the documents before the signature commits)."""
    version = version or service.version(version_id)
    with service.db.session() as s:
        rows = s.execute(
            select(Series.series_uid, Instance.sop_class_uid, Instance.sop_instance_uid, Series.description,
                   Series.modality, Instance.file_path)
            .join(Instance.series).join(Series.study)
            .where(Study.study_uid == version.study_uid, Series.modality.notin_(("SR", "DOC", "KO", "PR")))
            .order_by(Series.series_number, Instance.instance_number).limit(MAX_EVIDENCE)
        ).all()
    identity = service.identity(version.study_uid)
    # Derived and synthetic objects (SEG, Parametric Map, what-if and explanation captures) are never evidence
    # nor default key images; they appear only when attached explicitly as key images.
    refs = [(EvidenceRef(identity.study_uid, r[0], r[1], r[2]),
             kind_of_file(service.db.store_path(r[5]), r[1], r[4], r[3]) != ACQUIRED) for r in rows if r[1]]
    acquired = tuple(e for e, derived in refs if not derived)
    if key_images:
        by_uid = {e.sop_instance_uid: e for e, _ in refs}
        missing = [u for u in key_images if u not in by_uid]
        if missing:
            raise ReportError(f"key images not in this study: {', '.join(missing)}")
        keys = tuple(by_uid[u] for u in key_images)
        evidence = acquired + tuple(k for k in keys if k not in acquired)
    else:
        first_per_series: dict[str, EvidenceRef] = {}
        for e in acquired:
            first_per_series.setdefault(e.series_uid, e)
        keys = tuple(first_per_series.values())[:MAX_KEY_IMAGES]
        evidence = acquired
    try:
        tpl = load_template(version.exam_type)
        title, code = tpl.title, tpl.procedure_code
    except TemplateError:
        title, code = version.exam_type.replace("_", " ").title(), {}
    code = code or {"value": "18748-4", "scheme": "LN", "meaning": "Diagnostic imaging study"}
    supersedes = service.version(version.supersedes_id).version_no if version.supersedes_id else None
    return ReportDocument(version, identity, evidence, keys, title, code, supersedes_version_no=supersedes)
