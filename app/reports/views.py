"""Detached, read-only snapshots of report data handed to the UI and to every export: a version
(`VersionView`) and the patient/study identifiers it is about (`StudyIdentity`).

Their own module because the service builds them and the documents, exports and verification read them:
holding them in the service made the exports import the service that imports the exports.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Patient, Study
from app.reports.content import ReportContent
from app.reports.errors import ReportError


@dataclass(frozen=True)
class StudyIdentity:
    study_uid: str
    accession: str
    patient_id: str
    issuer: str
    patient_name: str
    patient_birth_date: str
    patient_sex: str
    study_date: str
    study_time: str
    study_description: str
    referring_physician: str
    modalities: str


@dataclass(frozen=True)
class VersionView:
    """A detached snapshot of one version, safe to hand to the UI."""

    id: int
    report_id: int
    study_uid: str
    exam_type: str
    version_no: int
    kind: str
    status: str
    content: ReportContent
    ai_draft: dict[str, Any] | None
    ai_generated: bool
    human_edited: bool
    ai_accepted: bool
    revision: int
    author: str
    signer: str
    signed_at: str
    supersedes_id: int | None
    updated_at: dt.datetime | None = None
    signature: dict[str, Any] = field(default_factory=dict)
    amend_reason: str = ""
    created_at: dt.datetime | None = None
    carried_addendum: str = ""  # earlier signed addenda an addendum version must keep, word for word

    @property
    def is_signed(self) -> bool:
        return self.status == "final"

    @property
    def needs_ai_review(self) -> bool:
        return self.ai_generated and not (self.human_edited or self.ai_accepted)



def study_identity(session: Session, study_uid: str) -> StudyIdentity:
    study = session.scalar(select(Study).where(Study.study_uid == study_uid))
    if study is None:
        raise ReportError(f"study {study_uid} is not in the database; import it before reporting")
    patient: Patient = study.patient
    return StudyIdentity(
        study_uid=study.study_uid, accession=study.accession or "", patient_id=patient.patient_id or "",
        issuer=patient.issuer or "", patient_name=patient.name or "", patient_birth_date=patient.birth_date or "",
        patient_sex=patient.sex or "", study_date=study.study_date.strftime("%Y%m%d") if study.study_date else "",
        study_time=study.study_time or "", study_description=study.description or "",
        referring_physician=study.referring_physician or "", modalities=study.modalities or "",
    )


