"""All tables of the study database, importable from one place (Alembic and the app load them here)."""

from app.db.models.ai import AiDraft, QaMessage
from app.db.models.cache import CachePin
from app.db.models.import_log import ImportBatch, ImportIssue
from app.db.models.integrity import FLAG_KINDS, InstanceConflict, StudyFlag
from app.db.models.interest import InterestImage
from app.db.models.measurement import Measurement
from app.db.models.name_words import PatientNameWord
from app.db.models.study import REPORT_STATUSES, Instance, Patient, Series, Study

__all__ = [
    "FLAG_KINDS",
    "REPORT_STATUSES",
    "AiDraft",
    "CachePin",
    "ImportBatch",
    "ImportIssue",
    "Instance",
    "InstanceConflict",
    "InterestImage",
    "Measurement",
    "Patient",
    "PatientNameWord",
    "QaMessage",
    "Series",
    "Study",
    "StudyFlag",
]
