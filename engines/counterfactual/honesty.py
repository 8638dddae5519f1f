"""What a what-if must say about itself: whether the edit makes sense for this image's reading, how far
each variant moved the engine's reading in words, and when a variant failed.

- Before running: removing a finding the reading does not see, or adding one it already sees, can only
  show an invented change; the user is told and asked first (`edit_warnings`).
- Each variant: the finding head's probability of each edited finding on the original's reconstruction
  and on the variant, as "pleural effusion 62% -> 41%: down, as asked" (`variant_words`).
- Failure: the shown image must equal the acquired image beyond the blend margin (composite.edit_weight);
  a variant that differs there is reported as a failure and not shown (`outside_change`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from engines.counterfactual.edits import ReportEdit

#: A variant whose head probability moved less than this (absolute) "barely moved".
BARELY = 0.02
#: Grey levels (0..255) the shown image may differ from the acquired one beyond the blend margin (rounding).
OUTSIDE_TOLERANCE = 1.0


def edit_warnings(reading: Mapping[str, Mapping], edit: ReportEdit) -> list[str]:
    """Sentences about edit changes the reading contradicts (empty when it contradicts none). `reading` is
    {finding: {"probability", "answer"}} (MedimBackend.reading / engines.reading)."""
    out = []
    for c in edit.changes:
        r = reading.get(c.finding)
        if r is None or c.kind not in ("add", "remove"):
            continue
        p = float(r.get("probability", 0.0))
        answer = str(r.get("answer", ""))
        name = c.finding.lower()
        if c.kind == "remove" and answer == "no":
            out.append(f"The engine's reading does not see {name} on this image ({p:.0%}); removing it has nothing "
                       "to remove, so any change shown would be invented.")
        elif c.kind == "add" and answer == "yes":
            out.append(f"The engine's reading already sees {name} on this image ({p:.0%}); adding it may change "
                       "nothing or exaggerate what is there.")
    return out


def variant_words(before: Mapping[str, float], after: Mapping[str, float], signs: Mapping[str, float]) -> str:
    """'pleural effusion 62% -> 41%: down, as asked' for each finding the edit moves (`signs` +1 up, -1 down)."""
    parts = []
    for finding, sign in signs.items():
        if finding not in before or finding not in after:
            continue
        b, a = float(before[finding]), float(after[finding])
        delta = a - b
        if abs(delta) < BARELY:
            how = "barely moved"
        else:
            way = "up" if delta > 0 else "down"
            how = f"{way}, as asked" if delta * sign > 0 else f"{way}: the wrong way"
        parts.append(f"{finding.lower()} {b:.0%} -> {a:.0%}: {how}")
    return "; ".join(parts)


def outside_change(original: np.ndarray, shown: np.ndarray, weight: np.ndarray) -> float:
    """Largest grey-level difference between the shown and the acquired image where the blend weight is 0
    (beyond the edited region and its margin); 0.0 when there is no such pixel."""
    o = np.asarray(original, np.float32)
    s = np.asarray(shown, np.float32)
    outside = np.asarray(weight) <= 0
    if o.shape != s.shape or o.shape != outside.shape:
        raise ValueError(f"shapes differ: original {o.shape}, shown {s.shape}, weight {outside.shape}")
    return float(np.abs(s - o)[outside].max()) if outside.any() else 0.0
