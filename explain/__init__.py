"""Grounding and uncertainty for the engine's reports (no Qt): maps per sentence and finding, token /
finding / image uncertainty, a cache, DICOM export and the grounding evaluation."""

from explain.cache import ExplanationCache, explanation_key
from explain.report import FindingMap, ReportExplanation, SentenceMap, SpanMap, explain_report
from explain.study import StudyExplanation, explain_study
from explain.uncertainty import FindingUncertainty, TokenUncertainty, finding_uncertainty

__all__ = [
    "ExplanationCache",
    "FindingMap",
    "FindingUncertainty",
    "ReportExplanation",
    "SentenceMap",
    "SpanMap",
    "StudyExplanation",
    "TokenUncertainty",
    "explain_report",
    "explain_study",
    "explanation_key",
    "finding_uncertainty",
]
