"""Fluency of report sentences against real radiologists' sentences (the IU X-ray reports).

- share of sentences within difflib ratio 0.9 of some real IU sentence, both lower-cased with punctuation
  stripped (exact matches first, then difflib over sentences of compatible length, with difflib's own
  upper bounds as filters);
- per-sentence perplexity under an interpolated Kneser-Ney trigram model of the IU sentences. A sentence that
  is itself in the corpus is scored leave-one-out (its own counts removed), so copying a corpus sentence
  earns no in-sample advantage; real IU sentences scored the same way are the reference.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from engines.labeler.label import split_sentences

RATIO = 0.9


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def report_sentences(text: str) -> list[str]:
    return [normalise(text[a:b]) for a, b in split_sentences(text or "") if normalise(text[a:b])]


class SentenceCorpus:
    """Normalised real sentences with a length index for the ratio search and trigram counts."""

    def __init__(self, sentences: Iterable[str]) -> None:
        self.counts = Counter(s for s in (normalise(x) for x in sentences) if s)
        self.by_len: dict[int, list[str]] = defaultdict(list)
        for s in self.counts:
            self.by_len[len(s)].append(s)
        self._lm = _KneserNey(self.counts)
        self._cache: dict[str, bool] = {}

    @classmethod
    def from_reports(cls, texts: Iterable[str]) -> SentenceCorpus:
        return cls(s for t in texts for s in report_sentences(t))

    def near_real(self, sentence: str, ratio: float = RATIO) -> bool:
        s = normalise(sentence)
        if not s:
            return False
        if s in self.counts:
            return True
        if s in self._cache:
            return self._cache[s]
        n = len(s)
        lo, hi = int(math.floor(n * ratio / (2 - ratio))), int(math.ceil(n * (2 - ratio) / ratio))
        m = difflib.SequenceMatcher(autojunk=False)
        m.set_seq2(s)
        found = False
        for length in range(lo, hi + 1):
            for cand in self.by_len.get(length, ()):
                m.set_seq1(cand)
                if m.real_quick_ratio() >= ratio and m.quick_ratio() >= ratio and m.ratio() >= ratio:
                    found = True
                    break
            if found:
                break
        self._cache[s] = found
        return found

    def perplexity(self, sentence: str) -> float:
        return self._lm.perplexity(normalise(sentence))


class _KneserNey:
    """Interpolated Kneser-Ney trigram LM (discount 0.75) with leave-one-out scoring of corpus sentences."""

    D = 0.75

    def __init__(self, counts: Counter[str]) -> None:
        self.sent_counts = counts
        self.c3: Counter = Counter()
        self.c2: Counter = Counter()
        for s, n in counts.items():
            toks = ["<s>", "<s>", *s.split(), "</s>"]
            for i in range(2, len(toks)):
                self.c3[(toks[i - 2], toks[i - 1], toks[i])] += n
                self.c2[(toks[i - 1], toks[i])] += n
        self._derive()

    def _derive(self) -> None:
        self.ctx3: Counter = Counter()
        self.types3: Counter = Counter()
        for (a, b, _), n in self.c3.items():
            self.ctx3[(a, b)] += n
            self.types3[(a, b)] += 1
        self.cont2: Counter = Counter()  # distinct left contexts of a bigram (continuation counts)
        for (_, b, c) in self.c3:
            self.cont2[(b, c)] += 1
        self.ctx2: Counter = Counter()
        self.types2: Counter = Counter()
        for (b, _c), n in self.cont2.items():
            self.ctx2[b] += n
            self.types2[b] += 1
        self.cont1: Counter = Counter(c for (_, c) in self.cont2)
        self.total1 = sum(self.cont1.values())
        self.vocab = len(self.cont1) + 1

    def _p(self, a: str, b: str, c: str, loo: int) -> float:
        d = self.D
        p1 = (self.cont1.get(c, 0) + 0.5) / (self.total1 + 0.5 * self.vocab)
        n2 = self.ctx2.get(b, 0)
        p2 = p1
        if n2:
            p2 = max(self.cont2.get((b, c), 0) - d, 0) / n2 + d * self.types2[b] / n2 * p1
        n3 = self.ctx3.get((a, b), 0) - loo
        if n3 <= 0:
            return p2
        c3 = self.c3.get((a, b, c), 0) - loo
        types = self.types3[(a, b)] - (1 if loo and c3 == 0 else 0)
        return max(c3 - d, 0) / n3 + d * max(types, 1) / n3 * p2

    def perplexity(self, s: str) -> float:
        toks = ["<s>", "<s>", *s.split(), "</s>"]
        loo = 1 if self.sent_counts.get(s, 0) > 0 else 0
        lp = sum(math.log(max(self._p(toks[i - 2], toks[i - 1], toks[i], loo), 1e-12)) for i in range(2, len(toks)))
        return math.exp(-lp / (len(toks) - 2))


def fluency(texts: Sequence[str], corpus: SentenceCorpus) -> dict:
    """Per report: share of its sentences near a real one, and its sentences' median perplexity; pooled."""
    per_report, sent_flags, ppls = [], [], []
    for t in texts:
        sents = report_sentences(t)
        flags = [corpus.near_real(s) for s in sents]
        p = [corpus.perplexity(s) for s in sents]
        sent_flags += flags
        ppls += p
        per_report.append((sum(flags), len(flags), p))
    ppls_sorted = sorted(ppls)
    return {"sentences": len(sent_flags), "near_real_share": (sum(sent_flags) / len(sent_flags)) if sent_flags else None,
            "median_perplexity": ppls_sorted[len(ppls_sorted) // 2] if ppls_sorted else None,
            "per_report": per_report}
