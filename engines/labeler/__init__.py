"""Rule-based CheXpert findings labeler (ConText-style negation/uncertainty) and source-label mappings."""

from engines.labeler.findings import FINDINGS, PATHOLOGIES
from engines.labeler.label import LabelResult, Mention, SentenceLabels, label_report, split_sentences
from engines.labeler.sources import findings_from_mesh, findings_from_source_labels

__all__ = [
    "FINDINGS",
    "PATHOLOGIES",
    "LabelResult",
    "Mention",
    "SentenceLabels",
    "findings_from_mesh",
    "findings_from_source_labels",
    "label_report",
    "split_sentences",
]
