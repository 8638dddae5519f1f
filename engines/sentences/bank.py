"""The candidate bank: report sentences, normalised and clustered, each with its labeler reading.

The shipped bank (`sentence_bank.json` beside the weights, built by `python -m lab.build.sentence_bank
authored`) holds the project's own sentences (resources/sentences, engines.sentences.authored); the IU X-ray
reports (CC BY-NC-ND 4.0) give a development-only bank (`... sentence_bank iu`, never under resources/). At a
site its own signed reports join through `add_reports` (and per draft as similar cases' sentences). A sentence that
needs context a single study does not give (a prior, a dictation note, a recommendation) is left out, as
for composed training reports (lab.data.paired). Sentences whose normalised text is equal merge;
sentences that say the same with the same words (same reading, same content words in any order: "heart size
is normal" / "normal heart size") form one cluster, represented by its most used wording. The decoder scores
cluster representatives; each keeps the reports it came from (provenance).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engines.labeler.label import split_sentences
from engines.sentences.reading import SentenceReading, read_sentence
from engines.sentences.rules import UNFIT

BANK_FILE = "sentence_bank.json"
FORMAT = "radstation-sentence-bank"
_STOP = frozenset("a an the is are was were be been of and or in on to with there this that these it its as at "
                  "for by no not any".split())
_NORMAL_IMPRESSION = re.compile(
    r"\b(?:no\s+(?:acute|active)|negative\s+(?:chest|study|exam\w*|for\s+acute)|normal\s+(?:chest|study|exam\w*|"
    r"radiograph\w*|x-?ray|cardiopulmonary)|no\s+evidence\s+of\s+(?:acute|active))", re.I)


def normalise(text: str) -> str:
    """Lower-case, punctuation stripped, whitespace collapsed: the form sentences are compared in."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def clean_sentence(text: str) -> str:
    """Numbering removed, first letter capitalised, a full stop at the end."""
    s = re.sub(r"^\s*\d+[.)]\s*", "", text).strip().rstrip(";,:")
    if not s:
        return ""
    if not s.endswith((".", "?", "!")):
        s += "."
    return s[0].upper() + s[1:]


_LEANS_ON_CONTEXT = re.compile(r"^(?:however|but|and|or|this|these|that|those|it|they|which|there\s+is\s+also|"
                               r"again|otherwise|in\s+addition|additionally|furthermore|moreover)\b", re.I)


def fits_single_study(text: str, min_words: int = 3, max_words: int = 24) -> bool:
    """Whether a sentence can stand in a draft of one study without a prior or outside context (no
    comparison, no dictation note, not opening with a word that points at the sentence before)."""
    n = len(text.split())
    return (min_words <= n <= max_words and UNFIT.search(text) is None
            and _LEANS_ON_CONTEXT.search(text) is None)


@dataclass
class Candidate:
    """One cluster of the bank: its representative wording, reading, and where its wordings came from."""

    text: str
    part: str  # "findings" | "impression": the report part it was written in
    reading: SentenceReading
    count: int = 1  # reports that used a wording of this cluster
    sources: list[str] = field(default_factory=list)  # "authored:lungs.txt:12", "site:<uid>", "case:<id>", "iu:CXR12" (first 8)
    origin: str = "iu"  # where the representative came from
    index: int = -1

    @property
    def normal_impression(self) -> bool:
        return (self.part == "impression" and not self.reading.present and not self.reading.uncertain
                and _NORMAL_IMPRESSION.search(self.text) is not None and len(self.text.split()) <= 12)

    def to_json(self) -> dict:
        return {"text": self.text, "part": self.part, "reading": self.reading.to_json(), "count": self.count,
                "sources": self.sources, "origin": self.origin}


def _cluster_key(part: str, reading: SentenceReading, norm: str) -> tuple:
    words = tuple(sorted({w for w in norm.split() if w not in _STOP}))
    return (part, tuple(sorted(reading.states.items())), reading.laterality, words)


class CandidateBank:
    """Clustered candidate sentences; `add_reports` grows it (site reports) without rebuilding."""

    def __init__(self, candidates: Sequence[Candidate] = ()) -> None:
        self.candidates: list[Candidate] = []
        self._by_key: dict[tuple, Candidate] = {}
        self._wordings: dict[tuple, dict[str, int]] = {}
        for c in candidates:
            self._insert(c)

    def __len__(self) -> int:
        return len(self.candidates)

    def _insert(self, c: Candidate) -> Candidate:
        key = _cluster_key(c.part, c.reading, normalise(c.text))
        have = self._by_key.get(key)
        if have is None:
            c.index = len(self.candidates)
            self.candidates.append(c)
            self._by_key[key] = c
            self._wordings[key] = {c.text: c.count}
            return c
        have.count += c.count
        have.sources.extend(s for s in c.sources if s not in have.sources and len(have.sources) < 8)
        words = self._wordings[key]
        words[c.text] = words.get(c.text, 0) + c.count
        best = max(words, key=lambda w: (words[w], -len(w)))
        if best != have.text:  # the most used wording represents the cluster
            have.text, have.origin = best, c.origin if best == c.text else have.origin
        return have

    def add_reports(self, reports: Iterable[tuple[str, str, str]], origin: str = "site") -> list[Candidate]:
        """Add (source id, findings, impression) reports sentence by sentence; returns the clusters touched."""
        touched = []
        for source, findings, impression in reports:
            for part, body in (("findings", findings or ""), ("impression", impression or "")):
                for a, b in split_sentences(body):
                    text = clean_sentence(body[a:b])
                    if not text or not fits_single_study(text):
                        continue
                    touched.append(self._insert(Candidate(text, part, read_sentence(text), 1,
                                                          [f"{origin}:{source}"], origin)))
        return touched

    # -- persistence ------------------------------------------------------------------------------------
    def save(self, path: Path | str) -> None:
        payload = {"format": FORMAT, "version": 1, "candidates": [c.to_json() for c in self.candidates]}
        Path(path).write_text(json.dumps(payload, separators=(",", ":")) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path | str) -> CandidateBank:
        path = Path(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the sentence bank ({exc})") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{path}: not a RadStation sentence bank")
        cands = []
        for d in payload.get("candidates", []):
            try:
                cands.append(Candidate(str(d["text"]), str(d["part"]), SentenceReading.from_json(d["reading"]),
                                       int(d.get("count", 1)), [str(s) for s in d.get("sources", [])],
                                       str(d.get("origin", "iu"))))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}: broken candidate {d!r:.80} ({exc})") from exc
        return cls(cands)
