"""Order what-if variants by how clearly the model's finding head sees the requested change.

Each resample under the edited report is one draw; some show the edit, some barely do. The backbone's
finding head (engines.models.config `findings`) reads the image tokens as a classifier, so the variant
whose head probabilities moved most the asked way (up for an added finding, down for a removed one,
relative to the original's reconstruction) is shown first. Weights without a head, or edits of findings
the head does not know, leave the seed order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engines.counterfactual.edits import ReportEdit


def edit_signs(edit: ReportEdit, known: Sequence[str]) -> dict[str, float]:
    """+1 for findings the edit adds, -1 for those it removes (only findings in `known`)."""
    return {c.finding: (1.0 if c.kind == "add" else -1.0) for c in edit.changes
            if c.kind in ("add", "remove") and c.finding in known}


def head_edit_scores(pipeline, images: Sequence[np.ndarray], reference: np.ndarray, edit: ReportEdit
                     ) -> list[float] | None:
    """Per image: mean over the edit's head findings of sign * (p(image) - p(reference)); None when the
    model has no head or the edit changes no finding it knows."""
    signs = edit_signs(edit, pipeline.model_config.findings)
    if not signs or not images:
        return None
    probs = pipeline.finding_probabilities([reference, *images])
    ref = probs[0]
    return [float(np.mean([s * (p[f] - ref[f]) for f, s in signs.items()])) for p in probs[1:]]


def rank_variants(pipeline, variants: list, reference: np.ndarray, edit: ReportEdit) -> list:
    """`variants` (each with .decoded, the model's own image, and a writable .head_score) best-first by
    head_edit_scores against `reference` (the original's reconstruction); the stable sort keeps the seed
    order among equals and when there is no head."""
    scores = head_edit_scores(pipeline, [v.decoded for v in variants], reference, edit)
    if scores is None:
        return list(variants)
    for v, s in zip(variants, scores, strict=True):
        v.head_score = s
    return sorted(variants, key=lambda v: -v.head_score)
