"""Sentence-level drafting: reports made of real report sentences, chosen, checked and ordered by the engine.

bank (candidate sentences with their labeler reading, clustered), reading (what one sentence states),
study (what the study shows: the finding reader, optionally with similar cases' labels), sections (the
template's order), scorer (the engine's masked likelihood of a candidate in its slot) and decode (the slot
loop that fills a draft, consistent by construction). Qt-free; no training or evaluation imports.
"""
