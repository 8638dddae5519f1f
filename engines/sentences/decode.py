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
.conflicts), so no draft states a finding present and absent, or on both sides; denies nothing a committed
sentence denied (reading.redundant: no "No pneumothorax. No pleural effusion or pneumothorax."); and names a
side or place never (reading.names_place): the finding reader reads no side or lobe, and another patient's
(a similar case's) side is no evidence for this image, so a sentence placing a finding ("Left upper lobe
pneumonia", "No left effusion") is not eligible; impressions place a finding only as the findings did
(places_as_findings), which therefore they never do. Among eligible candidates the score is
  w_engine x (mean token log-probability in the slot, + pmi x its gain over the same without the image)
  + w_reader x (the study reading's mean margin for what the sentence states)
  + w_prior x log(how many reports used the sentence) + w_cover x (checklist findings it newly denies)
  - side_penalty when it names a side or lobe (none is eligible today; kept for a reader that reads sides)
  + case_bonus when a similar case's report used it.
The findings are finally grouped by the template's sections; the order of slots within a section is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from engines.sentences.bank import Candidate, CandidateBank
from engines.sentences.reading import (
    _LOBE_LEVELS,
    SECTION_FINDINGS,
    SentenceReading,
    names_place,
)
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
    """Holds the bank, its token ids (encoded once per tokenizer) and each candidate's reading as bit sets."""

    def __init__(self, bank: CandidateBank, encode) -> None:
        self.bank = bank
        self._encode = encode
        self._ids: dict[str, list[int]] = {}
        self._bit: dict[str, int] = {}  # finding -> its bit in the reading masks
        self._side: dict[str, int] = {}  # laterality -> its code (0: none)
        self._signature: dict[tuple, int] = {}  # a reading's states, in order -> an id (equal states, equal agreement)
        self._bank_facts: tuple[int, int, np.ndarray] | None = None  # (id(bank), len(bank), facts of the bank's rows)

    def ids(self, text: str) -> list[int]:
        got = self._ids.get(text)
        if got is None:
            got = self._ids[text] = list(self._encode(text))
        return got

    def mask(self, findings: Iterable[str]) -> int:
        """The bit set of these findings."""
        m = 0
        for f in findings:
            b = self._bit.get(f)
            if b is None:
                if len(self._bit) >= 62:
                    raise ValueError("the sentence bank names more than 62 findings; the decoder holds them as bits")
                b = self._bit[f] = len(self._bit)
            m |= 1 << b
        return m

    def _facts_of(self, c: Candidate) -> tuple[int, ...]:
        r = c.reading
        side = 0
        if r.laterality:
            side = self._side.setdefault(r.laterality, len(self._side) + 1)
        lobes = set(r.location) & _LOBE_LEVELS
        sig = self._signature.setdefault(tuple(r.states.items()), len(self._signature))
        return (self.mask(r.present), self.mask(r.uncertain), self.mask(r.effective_present),
                self.mask(r.effective_absent), int(bool(r.absent)), side,
                sum(1 << i for i, lv in enumerate(sorted(_LOBE_LEVELS)) if lv in lobes),
                _PART_CODE.get(c.part, 2), int(r.section == "bones"),
                int(r.laterality is not None or bool(r.location)), int(names_place(r)), sig)

    def facts(self, pool: Sequence[Candidate]) -> np.ndarray:
        """(len(pool), len(_FACTS)) int64: each candidate's reading as bit sets and codes (see _FACTS). The bank's
        rows are worked out once: the bank only grows (add_reports appends clusters) and a cluster keeps the
        reading it was made with."""
        n_bank = len(self.bank.candidates)
        have = self._bank_facts
        if have is None or have[0] != id(self.bank) or have[1] != n_bank:
            rows = np.array([self._facts_of(c) for c in self.bank.candidates], dtype=np.int64).reshape(-1, len(_FACTS))
            have = self._bank_facts = (id(self.bank), n_bank, rows)
        bank_rows = have[2]
        shared = n_bank if len(pool) >= n_bank and all(
            pool[i] is self.bank.candidates[i] for i in (0, n_bank - 1) if n_bank) else 0
        rest = [self._facts_of(c) for c in pool[shared:]]
        if not rest:
            return bank_rows[: len(pool)]
        extra = np.array(rest, dtype=np.int64).reshape(-1, len(_FACTS))
        return np.concatenate([bank_rows[:shared], extra]) if shared else extra

    def pool(self, case_sentences: Mapping[str, Sequence[tuple[str, str]]] | None = None
             ) -> tuple[list[Candidate], dict[int, str]]:
        """The bank's candidates plus the similar cases' sentences it lacks, and {candidate index: case id} of the
        candidates a case's report used."""
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
        return pool, from_case

    def decode(self, scorer: EngineScorer, reading: StudyReading, settings: DecodeSettings, *,
               findings_id: int, impression_id: int, order: Sequence[str],
               case_sentences: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> SentenceDraft:
        """One draft. `case_sentences` maps a similar case's id to its report's (part, sentence) pairs: their
        clusters get `case_bonus` and their provenance; sentences the bank lacks become candidates."""
        pool, from_case = self.pool(case_sentences)
        run = _Run(self, scorer, reading, settings, pool, from_case, findings_id, impression_id)
        run.fill()
        return run.assemble(order)


#: Columns of SentenceDecoder.facts: bit sets over findings (present, uncertain, effective present, effective
#: absent), whether it denies anything, laterality code, lobe-level bits, part (0 findings, 1 impression, 2 other),
#: bones section, names a side or place, places what it states (reading.names_place), states signature.
_FACTS = ("present", "uncertain", "eff_present", "eff_absent", "denies", "side", "lobes", "part", "bones", "placed",
          "places_statement", "signature")
_PART_CODE = {"findings": 0, "impression": 1}


class _Run:
    """The state of one draft's slot loop. Which candidates may still fill a slot is kept as one boolean per
    candidate (agrees with the reading and conflicts with nothing committed), updated by bit-set arithmetic
    over the whole pool when a sentence is committed: the same candidates, in the same order, as asking
    `conflicts` of every candidate against every committed sentence in every slot."""

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
        f = dec.facts(pool)
        (self.p, self.u, self.ep, self.ea, self.denies, self.side, self.lobes, self.part, self.bones, self.placed,
         places_statement, self.sig) = f.T
        self.pu = self.p | self.u
        ap, au = dec.mask(self.allowed_present), dec.mask(self.allowed_uncertain)
        # agrees: states only what the reading says (present ones present, uncertain ones uncertain, absent ones
        # absent; a denied parent denies its children too)
        self.live = ((self.p & ~ap) == 0) & ((self.u & ~au) == 0) & ((self.ea & (ap | au)) == 0)
        # places: none (the reader reads no side or lobe; a similar case's side is another patient's)
        self.live &= places_statement == 0
        self.count = np.array([max(c.count, 1) for c in pool], dtype=np.float64)
        self.case = np.array([float(c.index in from_case) for c in pool])
        self._by_text: dict[str, list[int]] = {}
        for i, c in enumerate(pool):
            self._by_text.setdefault(c.text, []).append(i)
        self._margins = {f: reading.margin(f) for f in reading.probabilities}
        self._agreements: dict[int, float] = {}  # states signature -> _agreement (the reading is fixed per draft)

    # -- eligibility ----------------------------------------------------------------------------------
    def _commit(self, i: int) -> None:
        """Drops from `live` every candidate that conflicts with pool[i] (engines.sentences.reading.conflicts,
        as bit sets), denies a finding it denies (reading.redundant) or repeats its text."""
        p, u, ep, ea = self.p[i], self.u[i], self.ep[i], self.ea[i]
        clash = ((((self.ep | self.u) & ea) != 0) | (((ep | u) & self.ea) != 0)
                 | ((self.p & u) != 0) | ((p & self.u) != 0))
        shared = (self.pu & (p | u)) != 0
        side, lobes = self.side[i], self.lobes[i]
        sides = (self.side != 0) & (side != 0) & (self.side != side)
        levels = (self.lobes != 0) & (lobes != 0) & ((self.lobes & lobes) == 0)
        self.live &= ~(clash | (shared & (sides | levels)) | ((self.ea & ea) != 0))
        self.live[self._by_text[self.pool[i].text]] = False

    # -- one slot -------------------------------------------------------------------------------------
    def choose(self, slot: str, eligible: np.ndarray, extra: np.ndarray | None = None) -> bool:
        """Commits the best of the candidates at indices `eligible` (pool order); False when none can be."""
        if not len(eligible):
            return False
        s = self.s
        cands = [self.pool[i] for i in eligible]
        ids = [self.dec.ids(c.text) for c in cands]
        cond, uncond = self.scorer.score(self._scoring_prefix(), ids)
        engine = cond if uncond is None else cond + s.pmi * (cond - uncond)
        reader = np.array([self._agreement_of(i) for i in eligible])
        prior = np.log(self.count[eligible])
        side = self.placed[eligible].astype(np.float64)
        case = self.case[eligible]
        total = (s.w_engine * engine + s.w_reader * reader + s.w_prior * prior - s.side_penalty * side
                 + s.case_bonus * case + (0 if extra is None else extra))
        total = np.where(np.isfinite(cond), total, -np.inf)
        best = int(np.argmax(total))
        if not np.isfinite(total[best]):
            return False
        c = cands[best]
        sources = list(c.sources)
        if c.index in self.from_case:
            sources = [f"case:{self.from_case[c.index]}", *[x for x in sources if not x.startswith("case:")]]
        part = "impression" if slot == "impression" else "findings"
        choice = SentenceChoice(c.text, part, "impression" if part == "impression" else c.reading.section, slot,
                                self._confidence(c.reading), float(cond[best]),
                                float(total[best]), len(cands), c.index if c.index < len(self.dec.bank) else -1,
                                sources[:8], dict(c.reading.states), c.reading.laterality)
        self.committed.append((c, choice))
        self._commit(int(eligible[best]))
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

    def _agreement_of(self, i: int) -> float:
        sig = int(self.sig[i])
        value = self._agreements.get(sig)
        if value is None:
            value = self._agreements[sig] = self._agreement(self.pool[i].reading)
        return value

    def _agreement(self, r: SentenceReading) -> float:
        """Mean margin of the reading for what the sentence states (present: margin, absent: -margin)."""
        vals = [self._margins[f] * (1 if v == 1 else -1) for f, v in r.states.items()
                if f in self._margins and v in (0, 1)]
        return float(np.mean(vals)) if vals else 0.0

    def _confidence(self, r: SentenceReading) -> float | None:
        probs = [self.reading.state_probability(f, v) for f, v in r.states.items()]
        probs = [p for p in probs if p is not None]
        return float(min(probs)) if probs else None

    def _where(self, mask: np.ndarray, keep: Callable[[Candidate], bool] | None = None) -> np.ndarray:
        """Indices (pool order) of live candidates in `mask` that `keep` accepts."""
        idx = np.flatnonzero(self.live & mask)
        if keep is not None and len(idx):
            idx = idx[np.fromiter((keep(self.pool[i]) for i in idx), dtype=bool, count=len(idx))]
        return idx

    def _count_bits(self, bits: np.ndarray) -> np.ndarray:
        return np.array([int(b).bit_count() for b in bits], dtype=np.float64)

    # -- the slot loop --------------------------------------------------------------------------------
    def covered_present(self) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for c, _ in self.committed:
            out |= c.reading.present | c.reading.uncertain
        return out

    def fill(self) -> None:
        dec = self.dec
        in_report = self.part != 2
        plain = (self.pu == 0)  # states nothing present or uncertain
        wanted = [(f, 1) for f in FINDING_ORDER if f in self.allowed_present - {"Lung Opacity"} or
                  (f == "Lung Opacity" and self.reading.states.get(f) == 1)]
        wanted += [(f, -1) for f in FINDING_ORDER if f in self.allowed_uncertain]
        # 1. what the study shows, heart first (as reports are written)
        heart_first = sorted(wanted, key=lambda fv: fv[0] not in SECTION_FINDINGS["heart"])
        for f, v in heart_first:
            if f in self.covered_present():
                continue
            bit = dec.mask((f,))
            self.choose(f"{'present' if v == 1 else 'uncertain'}:{f}",
                        self._where(in_report & (((self.p if v == 1 else self.u) & bit) != 0)))
        # 2. normal statements for what it lacks
        targets = set(_CHECKLIST & self.absent)
        if self.allowed_present & _LUNG_CHILDREN:
            targets -= {"Lung Opacity", "Consolidation"}
        normal = (self.part == 0) & (self.denies != 0) & plain
        for _ in range(6):
            if not targets:
                break
            want = dec.mask(targets)
            elig = self._where(normal & ((self.ea & want) != 0))
            if not len(elig):
                break
            cover = self._count_bits(self.ea[elig] & want)
            if not self.choose("normal", elig, self.s.w_cover * cover):
                break
            targets -= self.committed[-1][0].reading.effective_absent
        # 3. bones
        if self.s.bones:
            self.choose("bones", self._where((self.part == 0) & (self.bones != 0) & plain,
                                             lambda c: _BONE_NORMAL(c.text)))
        # 4. impression, derived from the findings
        self.prefix = self.prefix + [self.impression_id]
        stated = self.covered_present()
        stated_eff = stated | {p for f in stated for p, cs in (("Lung Opacity", _LUNG_CHILDREN),) if f in cs}
        if stated:
            uncovered = set(stated) - {p for f in stated for p, cs in (("Lung Opacity", _LUNG_CHILDREN),)
                                       if f in cs}  # a stated child covers its parent
            fits = ((self.part == 1) & ((self.p & ~dec.mask(stated_eff)) == 0)
                    & ((self.u & ~dec.mask(stated)) == 0))
            for _ in range(max(self.s.max_impression, 1)):
                want = dec.mask(uncovered)
                elig = self._where(fits & ((self.pu & want) != 0), lambda c: self.places_as_findings(c.reading))
                cover = self._count_bits(self.pu[elig] & want)
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
            self.choose("impression", self._where((self.part == 1) & plain, lambda c: c.normal_impression))

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
