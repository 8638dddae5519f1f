"""Rule-derived visual question answering pairs (presence, normality, location, laterality, severity)."""

from engines.qa.derive import QAPair, box_zone, derive_qa, derive_qa_by_split

__all__ = ["QAPair", "box_zone", "derive_qa", "derive_qa_by_split"]
