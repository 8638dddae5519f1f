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


def head_edit_probabilities(pipeline, images: Sequence[np.ndarray], reference: np.ndarray, edit: ReportEdit
                            ) -> tuple[dict[str, float], list[dict[str, float]]] | None:
    """(reference's, each image's) head probabilities of the findings the edit moves; None when the model has
    no head or the edit changes no finding it knows."""
    signs = edit_signs(edit, pipeline.model_config.findings)
    if not signs or not images:
        return None
    probs = pipeline.finding_probabilities([reference, *images])
    return ({f: probs[0][f] for f in signs}, [{f: p[f] for f in signs} for p in probs[1:]])


def head_edit_scores(pipeline, images: Sequence[np.ndarray], reference: np.ndarray, edit: ReportEdit
                     ) -> list[float] | None:
    """Per image: mean over the edit's head findings of sign * (p(image) - p(reference)); None when the
    model has no head or the edit changes no finding it knows."""
    got = head_edit_probabilities(pipeline, images, reference, edit)
    if got is None:
        return None
    signs = edit_signs(edit, pipeline.model_config.findings)
    ref, probs = got
    return [float(np.mean([s * (p[f] - ref[f]) for f, s in signs.items()])) for p in probs]


def rank_variants(pipeline, variants: list, reference: np.ndarray, edit: ReportEdit) -> list:
    """`variants` (each with .decoded, the model's own image, and a writable .head_score) best-first by
    head_edit_scores against `reference` (the original's reconstruction); the stable sort keeps the seed
    order among equals and when there is no head. Variants with `head_before`/`head_after` attributes also get
    the edited findings' probabilities on the reference and on themselves."""
    got = head_edit_probabilities(pipeline, [v.decoded for v in variants], reference, edit)
    if got is None:
        return list(variants)
    signs = edit_signs(edit, pipeline.model_config.findings)
    ref, probs = got
    for v, p in zip(variants, probs, strict=True):
        v.head_score = float(np.mean([s * (p[f] - ref[f]) for f, s in signs.items()]))
        if hasattr(v, "head_after"):
            v.head_before, v.head_after = dict(ref), dict(p)
    return sorted(variants, key=lambda v: -v.head_score)
