"""What the study shows, as the decoder uses it: per finding a probability, a state and a margin.

The probabilities come from the engine's finding reader (`MedimPipeline.finding_probabilities`), optionally
mixed with the share of similar cases that have each finding (retrieval; weight `case_weight`). A finding is
present when its probability is above its threshold (the training prevalence times `scale`), uncertain when
it is above but within `uncertain_band` nats of it, and the study is normal when No Finding is above its own
threshold (the prevalence times `normal_scale`; then nothing else is present: the rule `head-prior` drafting
uses). Findings the reader does not
know are absent unless similar cases say otherwise. The margin (log-odds above the threshold) is how sure
the reading is, and what the decoder's agreement term and each sentence's confidence read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from engines.labeler.findings import PATHOLOGIES

NORMAL = "No Finding"
_EPS = 1e-4


def logit(p: float) -> float:
    p = min(max(float(p), _EPS), 1 - _EPS)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class StudyReading:
    probabilities: dict[str, float]  # combined reader (and similar cases) probability per finding
    thresholds: dict[str, float]
    states: dict[str, int]  # finding -> 1 present, -1 uncertain, 0 absent (every pathology + Support Devices)

    def margin(self, finding: str) -> float:
        """Log-odds of the finding above its threshold (0 for findings nobody read)."""
        if finding not in self.probabilities:
            return 0.0
        return logit(self.probabilities[finding]) - logit(self.thresholds.get(finding, 0.5))

    def state_probability(self, finding: str, state: int) -> float | None:
        """How likely the reading finds `state` (1 present, 0 absent, -1 uncertain: 0.5) of a finding it read."""
        p = self.probabilities.get(finding)
        if p is None:
            return None
        return 0.5 if state == -1 else (p if state == 1 else 1.0 - p)

    @property
    def present(self) -> list[str]:
        return [f for f, v in self.states.items() if v == 1]

    @property
    def uncertain(self) -> list[str]:
        return [f for f, v in self.states.items() if v == -1]


def read_study(reader: Mapping[str, float], prior: Mapping[str, float], *,
               case_labels: Mapping[str, float] | None = None, case_weight: float = 0.0, scale: float = 1.0,
               normal_scale: float = 1.0, uncertain_band: float = 0.0) -> StudyReading:
    """StudyReading from the reader's probabilities, the training prevalence and (optionally) the share of
    similar cases with each finding."""
    if not 0.0 <= case_weight <= 1.0:
        raise ValueError(f"case_weight must be in [0, 1], got {case_weight}")
    probs: dict[str, float] = {}
    names = set(reader) | (set(case_labels) if case_labels and case_weight > 0 else set())
    for f in names:
        r = reader.get(f)
        c = case_labels.get(f) if case_labels and case_weight > 0 else None
        if r is None:
            probs[f] = float(c)  # type: ignore[arg-type]
        elif c is None:
            probs[f] = float(r)
        else:
            probs[f] = (1 - case_weight) * float(r) + case_weight * float(c)
    thresholds = {f: min(max(float(prior.get(f, 0.5)) * (normal_scale if f == NORMAL else scale), 0.01), 0.95)
                  for f in probs}
    states = {f: 0 for f in (*PATHOLOGIES, "Support Devices")}
    normal = NORMAL in probs and probs[NORMAL] > thresholds[NORMAL]
    if not normal:
        for f in states:
            if f not in probs:
                continue
            m = logit(probs[f]) - logit(thresholds[f])
            if m > 0:
                states[f] = -1 if m < uncertain_band else 1
    return StudyReading(probs, thresholds, states)
