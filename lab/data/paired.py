"""Compose report text for images that have labels but no report, from real IU report sentences.

Why: most images here have no report, yet the model learns text from image-report pairs. A composed report
is built only from real radiologist sentences whose labeler output agrees with the image's findings:
each positive finding is described by a sentence that asserts it (and asserts nothing the image lacks),
the other core findings are stated normal by sentences that deny only what the image lacks, and the
impression summarises. Choice is random but seeded per image, so a seed gives the same text on every run
and in any order. Composed samples carry ``report_is_real=False``; real reports are never replaced.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engines.data.sample import Sample
from engines.labeler.findings import FINDINGS, PATHOLOGIES
from engines.labeler.label import label_report
from engines.sentences.rules import CHECKLIST, UNFIT
from lab.data.iu import IUReport, load_iu_reports

_LUNG = frozenset({"Lung Opacity", "Consolidation", "Pneumonia", "Lung Lesion", "Atelectasis", "Edema"})
_BONE = re.compile(r"\b(?:osseous|bony|bones|skeletal|soft tissues?)\b", re.I)
_BONE_NORMAL = re.compile(r"\b(?:intact|unremarkable|normal|no acute)\b", re.I)
_NORMAL_IMPRESSION = re.compile(
    r"\b(?:no\s+(?:acute|active)|negative\s+(?:chest|study|exam\w*|for\s+acute)|"
    r"normal\s+(?:chest|study|exam\w*|radiograph\w*|x-?ray|cardiopulmonary)|no\s+evidence\s+of\s+(?:acute|active))",
    re.I,
)
_NOT_CHEST = re.compile(r"\b(?:disc|spine|spinal|vertebra\w*|bony|osseous|bone|abdom\w*|bowel|shoulder)\b", re.I)
_SIDE = re.compile(r"\b(right|left|bilateral|bibasilar|both)\b", re.I)
_LOBE = re.compile(r"\b(?:lobe|lingula\w*|apex|apical|basilar|base|retrocardiac|perihilar|midlung)\b", re.I)


_LUNGS_CLEAR = re.compile(r"\blungs?\b.*\bclear\b|\bclear\s+lungs?\b", re.I)


def _side_of(text: str) -> str | None:
    sides = {s.lower() for s in _SIDE.findall(text)}
    if sides & {"bilateral", "bibasilar", "both"} or {"right", "left"} <= sides:
        return "bilateral"
    return next(iter(sides)) if len(sides) == 1 else None


@dataclass(frozen=True)
class BankSentence:
    """A real sentence with its labels; the derived sets are computed once (composition queries them a lot)."""

    text: str
    findings: dict[str, int]
    section: str  # "findings" | "impression"
    uid: str
    positives: frozenset[str] = field(init=False)
    negatives: frozenset[str] = field(init=False)
    side: str | None = field(init=False)
    has_lobe: bool = field(init=False)
    says_lungs_clear: bool = field(init=False)

    def __post_init__(self) -> None:
        pos = frozenset(f for f, v in self.findings.items() if v == 1 and f != "No Finding")
        object.__setattr__(self, "positives", pos)
        object.__setattr__(self, "negatives", frozenset(f for f, v in self.findings.items() if v == 0))
        object.__setattr__(self, "side", _side_of(self.text))
        object.__setattr__(self, "has_lobe", _LOBE.search(self.text) is not None)
        object.__setattr__(self, "says_lungs_clear", _LUNGS_CLEAR.search(self.text) is not None)


@dataclass
class SentenceBank:
    """Real IU sentences grouped by what the labeler says they assert or deny."""

    positive: dict[str, list[BankSentence]] = field(default_factory=dict)  # finding -> sentences asserting it
    normal: list[BankSentence] = field(default_factory=list)  # sentences that only deny findings
    impression_positive: dict[str, list[BankSentence]] = field(default_factory=dict)
    impression_normal: list[BankSentence] = field(default_factory=list)
    bone: list[BankSentence] = field(default_factory=list)
    devices: list[BankSentence] = field(default_factory=list)
    _groups: list | None = field(default=None, init=False, repr=False, compare=False)
    _groups_n: int = field(default=-1, init=False, repr=False, compare=False)

    @classmethod
    def from_reports(cls, reports: Iterable[IUReport], *, min_words: int = 3, max_words: int = 22) -> SentenceBank:
        bank = cls()
        seen: set[tuple[str, str]] = set()
        for rep in reports:
            for section, text in (("findings", rep.findings), ("impression", rep.impression)):
                if not text.strip():
                    continue
                for s in label_report(text).sentences:
                    sent = re.sub(r"^\s*\d+[.)]\s*", "", s.text).strip()
                    n = len(sent.split())
                    if not sent.endswith("."):
                        sent += "."
                    sent = sent[0].upper() + sent[1:]
                    key = (section, re.sub(r"\W+", " ", sent.lower()).strip())
                    if n < min_words or n > max_words or UNFIT.search(sent) or key in seen:
                        continue
                    seen.add(key)
                    item = BankSentence(sent, dict(s.findings), section, rep.uid)
                    if -1 in s.findings.values():
                        continue  # hedged sentences would make the composed label ambiguous
                    bank._add(item)
        return bank

    def _add(self, item: BankSentence) -> None:
        pos, neg = item.positives, item.negatives
        if item.section == "impression":
            if pos:
                for f in pos:
                    self.impression_positive.setdefault(f, []).append(item)
            elif (not neg and _NORMAL_IMPRESSION.match(item.text) and not _NOT_CHEST.search(item.text)
                  and len(item.text.split()) <= 10):
                self.impression_normal.append(item)
            return
        if pos - {"Support Devices"}:
            for f in pos:
                self.positive.setdefault(f, []).append(item)
        elif pos == {"Support Devices"}:
            self.devices.append(item)
        elif neg:
            self.normal.append(item)
        elif _BONE.search(item.text) and _BONE_NORMAL.search(item.text):
            self.bone.append(item)

    def normal_groups(self) -> list[tuple[frozenset[str], list[BankSentence]]]:
        """Normal sentences grouped by the set of findings they deny (composition filters groups, not
        thousands of sentences); cached, rebuilt if the list changed."""
        if self._groups is None or self._groups_n != len(self.normal):
            groups: dict[frozenset[str], list[BankSentence]] = {}
            for c in self.normal:
                groups.setdefault(c.negatives, []).append(c)
            self._groups, self._groups_n = list(groups.items()), len(self.normal)
        return self._groups

    @classmethod
    def from_iu(cls, path: Path | str | None = None) -> SentenceBank:
        """Build the bank from text_only/iu_xray_reports.jsonl (default: the shared data folder)."""
        return cls.from_reports(load_iu_reports(path))

    def __len__(self) -> int:
        return (
            sum(map(len, self.positive.values()))
            + len(self.normal)
            + sum(map(len, self.impression_positive.values()))
            + len(self.impression_normal)
            + len(self.bone)
            + len(self.devices)
        )


class CompositionError(ValueError):
    """The bank has no sentence that can describe a finding (too small a bank)."""


def _consistent(item: BankSentence, positives: frozenset[str], uncertain: frozenset[str]) -> bool:
    """The sentence asserts only positives and denies only findings the image lacks."""
    return item.positives <= positives and not (item.negatives & (positives | uncertain))


def _box_side(sample: Sample, finding: str) -> str | None:
    xs = [b.center[0] for b in sample.boxes if b.kind == "finding" and b.finding == finding]
    if not xs:
        return None
    sides = {"right" if x < 128 else "left" for x in xs}  # radiographs show the patient's right on the left
    return "bilateral" if len(sides) > 1 else sides.pop()


def compose_report(sample: Sample, bank: SentenceBank, seed: int = 0) -> tuple[str, str]:
    """(findings, impression) text for ``sample`` from its ``findings`` labels; deterministic per
    (seed, image_id)."""
    rng = random.Random(f"{seed}:{sample.image_id}")
    positives = frozenset(f for f in PATHOLOGIES if sample.findings.get(f) == 1)
    uncertain = frozenset(f for f in FINDINGS if sample.findings.get(f) == -1)
    devices = sample.findings.get("Support Devices") == 1
    described: set[str] = set()
    findings_sents: list[str] = []
    used: set[str] = set()

    allowed = positives | ({"Support Devices"} if devices else frozenset())
    side: dict[str, str] = {}  # finding -> the side the report has committed to

    def side_ok(c: BankSentence) -> bool:
        opposite = {"right": "left", "left": "right"}
        return all(side.get(f) != opposite.get(c.side or "", "-") for f in c.positives)

    def pick(pool: Sequence[BankSentence], want_side: str | None = None) -> BankSentence | None:
        cands = [c for c in pool if c.text not in used and _consistent(c, allowed, uncertain) and side_ok(c)]
        if want_side is not None:
            sided = [c for c in cands if c.side == want_side]
            cands = sided or [c for c in cands if c.side is None] or cands
        else:  # no box: a side or lobe in the text would be invented, so prefer sentences without one
            cands = [c for c in cands if c.side is None and not c.has_lobe] or cands
        if not cands:
            return None
        choice = rng.choice(cands)
        used.add(choice.text)
        if choice.side in ("right", "left"):
            for f in choice.positives:
                side.setdefault(f, choice.side)
        return choice

    # Positive findings, most specific first (Lung Opacity is often implied by what describes the others).
    order = [f for f in PATHOLOGIES if f != "Lung Opacity"] + ["Lung Opacity"]
    for f in order:
        if f not in positives or f in described:
            continue
        # Impression sentences read fine in the findings section too, and some findings (pneumonia) are
        # named almost only in impressions: both pools give variety.
        item = pick([*bank.positive.get(f, []), *bank.impression_positive.get(f, [])], _box_side(sample, f))
        if item is None:
            raise CompositionError(f"no bank sentence asserts {f!r} consistently with {sorted(positives)}")
        described |= item.positives
        findings_sents.append(item.text)
    if devices:
        item = pick(bank.devices)
        if item is not None:
            findings_sents.append(item.text)

    # Normal statements for the checklist items the image lacks.
    checklist = {f for group in CHECKLIST for f in group}
    targets = checklist - positives - uncertain
    if positives & _LUNG:
        targets -= {"Lung Opacity", "Consolidation"}  # "lungs are clear" would contradict the image
    normal_sents: list[str] = []
    lung_positive = bool(positives & _LUNG)
    for _ in range(6):
        if not targets:
            break
        blocked = positives | uncertain
        groups = [
            (neg, members)
            for neg, members in bank.normal_groups()
            if neg & targets and not (neg & checklist) - targets and not neg & blocked
        ]
        if not groups:
            break
        best = max(len(neg & targets) for neg, _ in groups)
        top = [
            c
            for neg, members in groups
            if len(neg & targets) >= max(1, best - 1)
            for c in members
            if c.text not in used and not (lung_positive and c.says_lungs_clear)
        ]
        if not top:
            break
        item = rng.choice(top)
        used.add(item.text)
        targets -= item.negatives
        normal_sents.append(item.text)
    # Heart first, as radiologists write; then lungs and pleura.
    heart = [s for s in normal_sents if re.search(r"heart|cardi|mediastin", s, re.I)]
    rest = [s for s in normal_sents if s not in heart]
    pos_heart = [s for s in findings_sents if re.search(r"heart|cardi|mediastin", s, re.I)]
    pos_rest = [s for s in findings_sents if s not in pos_heart]
    body = pos_heart + heart + pos_rest + rest
    if bank.bone and rng.random() < 0.5:
        item = pick(bank.bone)
        if item is not None:
            body.append(item.text)

    # Impression: the positives in summary, or a normal one-liner.
    if positives:
        imp: list[str] = []
        covered: set[str] = set()
        for f in order:
            if f not in positives or f in covered:
                continue
            item = pick(bank.impression_positive.get(f, []), _box_side(sample, f))
            if item is not None:
                imp.append(item.text)
                covered |= item.positives
            if len(imp) >= 2:
                break
        if not imp:
            imp = [findings_sents[0]]
        impression = " ".join(imp)
    else:
        item = pick(bank.impression_normal)
        impression = item.text if item is not None else "No acute cardiopulmonary abnormality."
    return " ".join(body), impression


def pair_reports(samples: Iterable[Sample], sentence_bank: SentenceBank, seed: int = 0) -> list[Sample]:
    """Samples with real reports unchanged; the others with a composed report (``report_is_real=False``)."""
    out = []
    for s in samples:
        if s.report_is_real and s.has_report:
            out.append(s)
            continue
        findings, impression = compose_report(s, sentence_bank, seed)
        out.append(s.with_report(findings, impression, real=False))
    return out
