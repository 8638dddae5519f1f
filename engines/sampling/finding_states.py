"""Finding states a finding-conditioned model is told (engines.models.config `finding_condition`).

Drafting: what the finding head read from the image, as a present/absent vector. A finding is present when the
head finds it likelier than its training prevalence ("likelier than usual", the rule verified-prior selection
uses), and the study is normal when No Finding is: then every other finding is absent. This gate comes first
because the per-finding rule alone calls most normal studies abnormal (a 63 % prior for opacity is crossed
often). No threshold is fitted to the evaluation split.

Synthesis: what a report says, from the labeler: positive findings present, the rest absent (the training
labels are exhaustive the same way); an uncertain finding stays unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engines.labeler import label_report

NORMAL = "No Finding"
STATE_RULES = ("none", "head-prior")


def states_from_head(probs: Mapping[str, float], prior: Mapping[str, float],
                     findings: Sequence[str]) -> dict[str, float]:
    """Present (1.0) / absent (0.0) per finding from the head's probabilities against the training prevalence."""
    missing = [f for f in findings if f not in probs or f not in prior]
    if missing:
        raise ValueError(f"head probabilities or training prevalence missing for {missing}; "
                         "finding-conditioned drafting needs both (config.json finding_prior)")
    if NORMAL in findings and probs[NORMAL] > prior[NORMAL]:
        return {f: float(f == NORMAL) for f in findings}
    states = {f: float(probs[f] > prior[f]) for f in findings if f != NORMAL}
    if NORMAL in findings:
        states[NORMAL] = float(not any(states.values()))
    return {f: states[f] for f in findings}


def states_from_report(report: str, findings: Sequence[str]) -> dict[str, float]:
    """Present / absent / unknown (NaN) per finding from the labeler's reading of `report`."""
    found = label_report(report).findings
    states = {f: (float("nan") if found.get(f) == -1 else float(found.get(f) == 1)) for f in findings}
    if NORMAL in states:
        states[NORMAL] = float(not any(v == 1.0 for f, v in states.items() if f != NORMAL))
    return states


def state_row(states: Mapping[str, float], findings: Sequence[str]) -> list[float]:
    """The model's input order."""
    return [float(states[f]) for f in findings]


def present_push(states: Mapping[str, float]) -> dict[str, float]:
    """Head guidance towards what a report states (engines.sampling.head_guidance): +1 for each finding it
    states present (No Finding for a normal report); absent ones are left alone, since pushing ten findings
    down at once would drown the one asked for."""
    return {f: 1.0 for f, v in states.items() if v == 1.0}
