"""Similar cases: an image-embedding index of studies with their reports, for the "Similar studies" panel and
for retrieval-grounded sentence drafting (engines.sentences). Qt-free."""

from engines.similar.index import CaseIndex, CaseRecord, Hit

__all__ = ["CaseIndex", "CaseRecord", "Hit"]
