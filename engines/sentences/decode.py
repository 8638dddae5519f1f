"""Sentence-level decoding: a draft is a sequence of sentence slots, each filled with the candidate the engine
scores best for this image given the sentences already committed.

Slots, in the order the model learnt reports (lab.data.paired: described findings heart first, normal
statements, bones, then the impression):
1. one slot per finding the study reading finds present (then uncertain), filled with a sentence that
   states it and states nothing the reading lacks;
2. normal statements until every checklist finding the study lacks (heart, lungs, oedema, pleura) is denied;
3. a bones statement when the template has a bones section;
4. the impression, after [IMPRESSION]: sentences that restate the present findings (never others), or a
   normal one-liner when nothing is present.
A candidate is eligible only if it conflicts with no committed sentence (engines.sentences.reading
.conflicts), so no draft states a finding present and absent, or on both sides. Among eligible candidates
the score is
  w_engine x (mean token log-probability in the slot, + pmi x its gain over the same without the image)
  + w_reader x (the study reading's mean margin for what the sentence states)
  + w_prior x log(how many reports used the sentence) + w_cover x (checklist findings it newly denies)
  - side_penalty when it names a side or lobe the reading cannot know
  + case_bonus when a similar case's report used it.
The findings are finally grouped by the template's sections; the order of slots within a section is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from engines.sentences.bank import Candidate, CandidateBank
from engines.sentences.reading import SECTION_FINDINGS, SentenceReading, conflicts
from engines.sentences.rules import CHECKLIST
from engines.sentences.scorer import EngineScorer
from engines.sentences.study import StudyReading

_CHECKLIST = frozenset(f for group in CHECKLIST for f in group)
RESERVE = 40  # text positions kept free for the slot being scored
_LUNG_CHILDREN = frozenset(SECTION_FINDINGS["lungs"]) - {"Lung Opacity"}
#: Most specific first; Lung Opacity is often implied by what describes the others (as in composition).
FINDING_ORDER: tuple[str, ...] = ("Cardiomegaly", "Enlarged Cardiomediastinum", "Lung Lesion", "Edema",
                                  "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
                                  "Pleural Other", "Fracture", "Support Devices", "Lung Opacity")


@dataclass(frozen=True)
class DecodeSettings:
    """Weights of the slot score and the study-reading rule (chosen by cross-validation on train folds:
    engines.sentences.tune)."""

    w_engine: float = 1.0
    pmi: float = 0.0
    w_reader: float = 0.5
    w_prior: float = 0.1
    w_cover: float = 0.5
    side_penalty: float = 1.0
    case_bonus: float = 0.0
    scale: float = 1.0  # present above prevalence x scale (engines.sentences.study)
    normal_scale: float = 1.0  # normal study when No Finding is above its prevalence x normal_scale
    uncertain_band: float = 0.0
    answer_rule: bool = True  # never state present a finding the engine's yes/no answer calls absent (the
    #                           answer's 'no' rule, engines.calibration.Calibration.answer): one reading everywhere
    case_weight: float = 0.0  # share of similar cases' labels in the reading
    cases: int = 5  # similar cases consulted
    # An index smaller than this does not vote: the settings were chosen with ~1,900 indexed training cases per
    # fold, and in a site index of a few dozen studies the `cases` nearest are nearly the same for every image
    # (every draft would state that small set's findings). Its sentences are still offered; the reader reads alone.
    min_index_cases: int = 1000
    alone_scale: float | None = None  # scale / normal_scale of a reading without similar cases (no index, another
    alone_normal_scale: float | None = None  # embedding's, fewer than `cases` indexed): the reader alone; None: same
    case_embedding: str = "image-tokens"  # which embedding finds them (engines.similar.embeddings)
    bones: bool = True
    max_impression: int = 2

    def thresholds(self, with_cases: bool) -> tuple[float, float]:
        """(scale, normal_scale) of a reading with or without similar cases: thresholds chosen for a vote of
        `cases` similar studies do not fit the reader's probabilities alone."""
        if with_cases or self.case_weight <= 0:
            return self.scale, self.normal_scale
        return (self.scale if self.alone_scale is None else self.alone_scale,
                self.normal_scale if self.alone_normal_scale is None else self.alone_normal_scale)

    @classmethod
    def from_config(cls, d: Mapping | None) -> DecodeSettings:
        known = {k: v for k, v in dict(d or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class SentenceChoice:
    """One committed sentence: what it says, why it was chosen, where it came from."""

    text: str
    part: str  # findings | impression
    section: str  # template section (heart, lungs, pleura, bones, devices, other) or impression
    slot: str  # what the slot asked for: "present:Pneumonia", "normal", "bones", "impression"
    confidence: float | None  # how sure the study reading is of what the sentence states; None when it
    #                           states nothing the reading read (bones, devices): no one has judged it
    engine_logp: float  # mean token log-probability in its slot
    score: float
    candidates: int  # eligible candidates in the slot
    cluster: int  # bank cluster index (-1 for a sentence only a similar case had)
    sources: list[str] = field(default_factory=list)  # reports it was taken from: iu:<uid>, site:<uid>, case:<id>
    states: dict[str, int] = field(default_factory=dict)
    laterality: str | None = None
    char_start: int = 0  # offsets into the draft text, set when the text is assembled
    char_end: int = 0


@dataclass
class SentenceDraft:
    findings: str
    impression: str
    text: str
    sentences: list[SentenceChoice]
    reading: StudyReading
    forwards: int = 0


class SentenceDecoder:
    """Holds the bank and its token ids (encoded once per tokenizer)."""

    def __init__(self, bank: CandidateBank, encode) -> None:
        self.bank = bank
        self._encode = encode
        self._ids: dict[str, list[int]] = {}

    def ids(self, text: str) -> list[int]:
        got = self._ids.get(text)
        if got is None:
            got = self._ids[text] = list(self._encode(text))
        return got

    def decode(self, scorer: EngineScorer, reading: StudyReading, settings: DecodeSettings, *,
               findings_id: int, impression_id: int, order: Sequence[str],
               case_sentences: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> SentenceDraft:
        """One draft. `case_sentences` maps a similar case's id to its report's (part, sentence) pairs: their
        clusters get `case_bonus` and their provenance; sentences the bank lacks become candidates."""
        pool = list(self.bank.candidates)
        from_case: dict[int, str] = {}
        if case_sentences:
            extra = CandidateBank()
            for case_id, sents in case_sentences.items():
                for part, text in sents:
                    for c in extra.add_reports([(case_id, text if part == "findings" else "",
                                                 text if part == "impression" else "")], origin="case"):
                        c.sources = [f"case:{case_id}"]
            index = {(c.part, c.text): c for c in pool}
            for c in extra.candidates:
                hit = index.get((c.part, c.text))
                if hit is None:  # a sentence the bank does not have: a candidate of its own
                    c.index = len(pool)
                    pool.append(c)
                    hit = c
                from_case.setdefault(hit.index, c.sources[0].split(":", 1)[1])
        run = _Run(self, scorer, reading, settings, pool, from_case, findings_id, impression_id)
        run.fill()
        return run.assemble(order)


class _Run:
    """The state of one draft's slot loop."""

    def __init__(self, dec: SentenceDecoder, scorer: EngineScorer, reading: StudyReading, s: DecodeSettings,
                 pool: list[Candidate], from_case: dict[int, str], findings_id: int, impression_id: int) -> None:
        self.dec, self.scorer, self.reading, self.s = dec, scorer, reading, s
        self.pool, self.from_case = pool, from_case
        self.prefix = [findings_id]
        self.impression_id = impression_id
        self.committed: list[tuple[Candidate, SentenceChoice]] = []
        present = frozenset(reading.present)
        uncertain = frozenset(reading.uncertain)
        implied = {p for f in present for p, cs in (("Lung Opacity", _LUNG_CHILDREN),) if f in cs}
        self.allowed_present = present | implied
        self.allowed_uncertain = uncertain
        self.absent = frozenset(f for f, v in reading.states.items() if v == 0) - self.allowed_present
        self._agreements: dict[int, float] = {}  # id(candidate) -> _agreement (the reading is fixed per draft)

    # -- eligibility ----------------------------------------------------------------------------------
    def agrees(self, r: SentenceReading) -> bool:
        """States only what the reading says: present ones present, uncertain ones uncertain, absent ones
        absent (a denied parent denies its children too)."""
        return (r.present <= self.allowed_present and r.uncertain <= self.allowed_uncertain
                and r.effective_absent & (self.allowed_present | self.allowed_uncertain) == frozenset())

    def consistent(self, c: Candidate) -> bool:
        return all(not conflicts(c.reading, k.reading) and c.text != k.text for k, _ in self.committed)

    # -- one slot -------------------------------------------------------------------------------------
    def choose(self, slot: str, eligible: list[Candidate], extra: np.ndarray | None = None) -> bool:
        if not eligible:
            return False
        s = self.s
        ids = [self.dec.ids(c.text) for c in eligible]
        cond, uncond = self.scorer.score(self._scoring_prefix(), ids)
        engine = cond if uncond is None else cond + s.pmi * (cond - uncond)
        reader = np.array([self._agreement_of(c) for c in eligible])
        prior = np.log(np.array([max(c.count, 1) for c in eligible], dtype=np.float64))
        side = np.array([float(c.reading.laterality is not None or bool(c.reading.location)) for c in eligible])
        case = np.array([float(c.index in self.from_case) for c in eligible])
        total = (s.w_engine * engine + s.w_reader * reader + s.w_prior * prior - s.side_penalty * side
                 + s.case_bonus * case + (0 if extra is None else extra))
        total = np.where(np.isfinite(cond), total, -np.inf)
        best = int(np.argmax(total))
        if not np.isfinite(total[best]):
            return False
        c = eligible[best]
        sources = list(c.sources)
        if c.index in self.from_case:
            sources = [f"case:{self.from_case[c.index]}", *[x for x in sources if not x.startswith("case:")]]
        part = "impression" if slot == "impression" else "findings"
        choice = SentenceChoice(c.text, part, "impression" if part == "impression" else c.reading.section, slot,
                                self._confidence(c.reading), float(cond[best]),
                                float(total[best]), len(eligible), c.index if c.index < len(self.dec.bank) else -1,
                                sources[:8], dict(c.reading.states), c.reading.laterality)
        self.committed.append((c, choice))
        self.prefix = self.prefix + self.dec.ids(c.text)
        return True

    def places_as_findings(self, r: SentenceReading) -> bool:
        """An impression sentence names a side or lobe for a finding only as the findings did (or none): it adds
        no place the findings did not give (a summary does not invent laterality)."""
        for f in r.present | r.uncertain:
            said = [k.reading for k, ch in self.committed if ch.part == "findings"
                    and f in (k.reading.present | k.reading.uncertain)]
            if not said:
                continue
            sides = {x.laterality for x in said}
            if (r.laterality is not None and r.laterality not in sides) or not set(r.location) <= set().union(
                    *(x.location for x in said)):
                return False
        return True

    def _scoring_prefix(self) -> list[int]:
        """What the engine sees of the committed text: all of it while it leaves room for a sentence (40 tokens),
        else [FINDINGS] and the most recent tokens (the row is fixed-length; training truncated long reports too)."""
        room = self.scorer.text_len - RESERVE
        if len(self.prefix) <= room:
            return self.prefix
        return self.prefix[:1] + self.prefix[len(self.prefix) - room + 1:]

    def _agreement_of(self, c: Candidate) -> float:
        value = self._agreements.get(id(c))
        if value is None:
            value = self._agreements[id(c)] = self._agreement(c.reading)
        return value

    def _agreement(self, r: SentenceReading) -> float:
        """Mean margin of the reading for what the sentence states (present: margin, absent: -margin)."""
        vals = [self.reading.margin(f) * (1 if v == 1 else -1) for f, v in r.states.items()
                if f in self.reading.probabilities and v in (0, 1)]
        return float(np.mean(vals)) if vals else 0.0

    def _confidence(self, r: SentenceReading) -> float | None:
        probs = [self.reading.state_probability(f, v) for f, v in r.states.items()]
        probs = [p for p in probs if p is not None]
        return float(min(probs)) if probs else None

    # -- the slot loop --------------------------------------------------------------------------------
    def covered_present(self) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for c, _ in self.committed:
            out |= c.reading.present | c.reading.uncertain
        return out

    def fill(self) -> None:
        findings_pool = [c for c in self.pool if c.part in ("findings", "impression")]
        wanted = [(f, 1) for f in FINDING_ORDER if f in self.allowed_present - {"Lung Opacity"} or
                  (f == "Lung Opacity" and self.reading.states.get(f) == 1)]
        wanted += [(f, -1) for f in FINDING_ORDER if f in self.allowed_uncertain]
        # 1. what the study shows, heart first (as reports are written)
        heart_first = sorted(wanted, key=lambda fv: fv[0] not in SECTION_FINDINGS["heart"])
        for f, v in heart_first:
            if f in self.covered_present():
                continue
            elig = [c for c in findings_pool if c.reading.states.get(f) == v and self.agrees(c.reading)
                    and self.consistent(c)]
            self.choose(f"{'present' if v == 1 else 'uncertain'}:{f}", elig)
        # 2. normal statements for what it lacks
        targets = set(_CHECKLIST & self.absent)
        if self.allowed_present & _LUNG_CHILDREN:
            targets -= {"Lung Opacity", "Consolidation"}
        for _ in range(6):
            if not targets:
                break
            elig = [c for c in self.pool if c.part == "findings" and c.reading.is_normal_statement
                    and c.reading.effective_absent & targets and self.agrees(c.reading) and self.consistent(c)]
            if not elig:
                break
            cover = np.array([len(c.reading.effective_absent & targets) for c in elig], dtype=np.float64)
            if not self.choose("normal", elig, self.s.w_cover * cover):
                break
            targets -= self.committed[-1][0].reading.effective_absent
        # 3. bones
        if self.s.bones:
            elig = [c for c in self.pool if c.part == "findings" and c.reading.section == "bones"
                    and not c.reading.present and not c.reading.uncertain and _BONE_NORMAL(c.text)
                    and self.agrees(c.reading) and self.consistent(c)]
            self.choose("bones", elig)
        # 4. impression, derived from the findings
        self.prefix = self.prefix + [self.impression_id]
        stated = self.covered_present()
        stated_eff = stated | {p for f in stated for p, cs in (("Lung Opacity", _LUNG_CHILDREN),) if f in cs}
        if stated:
            uncovered = set(stated) - {p for f in stated for p, cs in (("Lung Opacity", _LUNG_CHILDREN),)
                                       if f in cs}  # a stated child covers its parent
            for _ in range(max(self.s.max_impression, 1)):
                elig = [c for c in self.pool if c.part == "impression"
                        and (c.reading.present | c.reading.uncertain) & uncovered
                        and c.reading.present <= stated_eff and c.reading.uncertain <= stated
                        and self.agrees(c.reading) and self.consistent(c) and self.places_as_findings(c.reading)]
                cover = np.array([len((c.reading.present | c.reading.uncertain) & uncovered) for c in elig],
                                 dtype=np.float64)
                if not self.choose("impression", elig, self.s.w_cover * cover):
                    break
                last = self.committed[-1][0].reading
                uncovered -= last.effective_present | last.uncertain
                if not uncovered:
                    break
            if not any(ch.part == "impression" for _, ch in self.committed):
                first = next(ch for _, ch in self.committed if ch.slot.startswith(("present", "uncertain")))
                self.committed.append((self.pool[first.cluster] if first.cluster >= 0 else self.committed[0][0],
                                       SentenceChoice(**{**asdict(first), "part": "impression",
                                                         "section": "impression", "slot": "impression (restated)"})))
        else:
            elig = [c for c in self.pool if c.normal_impression and self.agrees(c.reading) and self.consistent(c)]
            self.choose("impression", elig)

    def assemble(self, order: Sequence[str]) -> SentenceDraft:
        findings = [ch for _, ch in self.committed if ch.part == "findings"]
        impression = [ch for _, ch in self.committed if ch.part == "impression"]
        rank = {k: i for i, k in enumerate(order)}
        findings.sort(key=lambda ch: rank.get(ch.section, len(rank)))  # stable: slot order within a section
        lines: list[list[SentenceChoice]] = []
        for ch in findings:
            if lines and lines[-1][0].section == ch.section:
                lines[-1].append(ch)
            else:
                lines.append([ch])
        text, pos = "", 0
        f_parts = []
        for li, line in enumerate(lines):
            if li:
                text += "\n"
            for si, ch in enumerate(line):
                if si:
                    text += " "
                ch.char_start = len(text)
                text += ch.text
                ch.char_end = len(text)
            f_parts.append(" ".join(ch.text for ch in line))
        findings_text = "\n".join(f_parts)
        pos = len(text)
        impression_text = " ".join(ch.text for ch in impression)
        if impression:
            text += "\n\n"
            for si, ch in enumerate(impression):
                if si:
                    text += " "
                ch.char_start = len(text)
                text += ch.text
                ch.char_end = len(text)
        del pos
        return SentenceDraft(findings_text, impression_text, text, findings + impression, self.reading,
                             self.scorer.forwards)


def _BONE_NORMAL(text: str) -> bool:  # noqa: N802 - a predicate over the bones pool
    t = text.lower()
    return any(w in t for w in ("intact", "unremarkable", "normal", "no acute", "no displaced", "no fracture"))
