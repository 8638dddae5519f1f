"""One reading of a study, and where a text disagrees with it.

The reading is the engine's per-finding calibrated probability with its yes/no/uncertain answer
(MedimBackend.reading). Drafts, answers and what-if edits are all checked against it: a report that
states a finding the reading says is absent, or leaves out (or negates) one it says is present, is a
disagreement the panel shows rather than hides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engines.calibration import Calibration
from engines.labeler import label_report

STATE_WORDS = {1: "present", 0: "absent", -1: "uncertain"}


@dataclass(frozen=True)
class Disagreement:
    finding: str
    reading: str  # "yes" | "no"
    probability: float
    text_state: str  # "present" | "absent" | "uncertain" | "not stated"

    def sentence(self, source: str = "the draft") -> str:
        says = {"present": "states", "absent": "says there is no", "uncertain": "is unsure about",
                "not stated": "does not mention"}[self.text_state]
        reads = "present" if self.reading == "yes" else "absent"
        return (f"{source[0].upper() + source[1:]} {says} {self.finding.lower()}; the engine's reading has it "
                f"{reads} ({self.probability:.0%})")

    def to_dict(self) -> dict[str, Any]:
        return {"finding": self.finding, "reading": self.reading, "probability": self.probability,
                "text_state": self.text_state, "sentence": self.sentence()}


@dataclass(frozen=True)
class UncertainStatement:
    """A finding the text states (present or absent) while the reading answers "uncertain": not a disagreement,
    but the statement is firmer than the reading behind it, and the panel says so."""

    finding: str
    probability: float
    text_state: str  # "present" | "absent"

    def sentence(self, source: str = "the draft") -> str:
        says = "states" if self.text_state == "present" else "says there is no"
        return (f"{source[0].upper() + source[1:]} {says} {self.finding.lower()} although the engine's reading is "
                f"uncertain ({self.probability:.0%})")

    def to_dict(self) -> dict[str, Any]:
        return {"finding": self.finding, "probability": self.probability, "text_state": self.text_state,
                "sentence": self.sentence()}


def read_images(pipe: Any, images: Sequence[np.ndarray], calibration: Calibration | None = None
                ) -> dict[str, dict[str, Any]]:
    """The engine's reading of a study: per finding of the head, the calibrated probability (averaged over the
    views, as drafting averages their evidence), the raw one, the training prevalence and yes/no/uncertain.
    Empty for weights without a finding head."""
    findings = reading_findings(pipe)
    if not findings or not images:
        return {}
    cal, pre_calibrated = effective_calibration(pipe, calibration)
    per_view = pipe.finding_probabilities(list(images))
    raw = {f: float(np.mean([p[f] for p in per_view])) for f in findings}
    calibrated = cal.apply(raw)
    prior = getattr(pipe, "finding_prior", {}) or {}
    prev = {f: cal.prior(f, prior.get(f)) for f in findings}  # on the calibrated probability's scale
    return {f: {"probability": round(calibrated[f], 4), "raw": round(raw[f], 4),
                "calibrated": pre_calibrated or cal.is_calibrated(f),
                "prevalence": None if prev[f] is None else round(float(prev[f]), 4),
                "answer": cal.answer(calibrated[f], prev[f], f)} for f in findings}


def reading_findings(pipe: Any) -> tuple[str, ...]:
    """The findings the engine's reading covers (the finding reader's when shipped, else the head's)."""
    found = getattr(pipe, "reading_findings", None)
    if found is None:
        found = getattr(pipe.model_config, "findings", ())
    return tuple(found or ())


def effective_calibration(pipe: Any, calibration: Calibration | None) -> tuple[Calibration, bool]:
    """(the calibration to apply, whether the pipeline's probabilities are calibrated already). The finding
    reader returns probabilities Platt-calibrated on its out-of-fold train predictions (engines.reader), so a
    calibration.json is applied only when it was fitted on the same reading source (`source` in the file: a
    head calibration on the head's raw probabilities, a reader one refit on the reader's outputs); one fitted on
    another source is never applied on top of it, only its uncertain band and 'no' rule are kept."""
    cal = calibration or Calibration.identity()
    source = str(getattr(pipe, "reading_source", "head"))
    if str(cal.info.get("source", "head")) == source:
        return cal, source == "reader"
    return Calibration(band=cal.band, no_odds_ratio=cal.no_odds_ratio, no_odds_ratios=cal.no_odds_ratios), \
        source == "reader"


def text_states(text: str) -> dict[str, int]:
    """The labeler's states of a report (1 present, 0 absent, -1 uncertain); findings not mentioned are absent
    from the dict."""
    return dict(label_report(text or "").findings)


def uncertain_statements(reading: Mapping[str, Mapping[str, Any]], text: str) -> list[UncertainStatement]:
    """Findings `text` states present or absent (not hedged) that the reading answers "uncertain"."""
    states = text_states(text)
    out = []
    for finding, r in reading.items():
        state = states.get(finding)
        if str(r.get("answer", "")) == "uncertain" and state in (0, 1):
            out.append(UncertainStatement(finding, float(r.get("probability", 0.0)),
                                          "present" if state == 1 else "absent"))
    return out


def disagreements(reading: Mapping[str, Mapping[str, Any]], text: str) -> list[Disagreement]:
    """Findings where `text` and the reading point different ways. A finding the reading answers "yes" must be
    stated present; one it answers "no" must not be stated present. "Uncertain" readings and uncertain
    mentions disagree with nothing. No Finding is judged like the others (a normal study)."""
    states = text_states(text)
    out = []
    for finding, r in reading.items():
        answer = str(r.get("answer", ""))
        p = float(r.get("probability", 0.0))
        state = states.get(finding)
        if answer == "yes" and state in (None, 0):
            out.append(Disagreement(finding, "yes", p, "not stated" if state is None else "absent"))
        elif answer == "no" and state == 1:
            out.append(Disagreement(finding, "no", p, "present"))
    return out
