"""What-if honesty: the edit checked against the reading before anything runs, variant labels in words,
and a variant that touched the acquired image beyond the blend margin reported as a failure."""

from __future__ import annotations

import numpy as np
import pytest

from engines.counterfactual.composite import edit_weight, transfer_edit
from engines.counterfactual.edits import diff_reports
from engines.counterfactual.honesty import OUTSIDE_TOLERANCE, edit_warnings, outside_change, variant_words
from engines.counterfactual.metrics import difference_map, preservation
from engines.counterfactual.whatif import Variant, WhatIfResult

READING = {"Pleural Effusion": {"probability": 0.08, "answer": "no"},
           "Cardiomegaly": {"probability": 0.81, "answer": "yes"},
           "Edema": {"probability": 0.5, "answer": "uncertain"}}


def test_removing_what_is_not_seen_or_adding_what_is_there_is_said_first() -> None:
    remove = diff_reports("Small right pleural effusion.", "No pleural effusion.")
    warnings = edit_warnings(READING, remove)
    assert len(warnings) == 1 and "does not see pleural effusion on this image (8%)" in warnings[0]
    add = diff_reports("Heart size normal.", "The heart is enlarged.")
    assert "already sees cardiomegaly on this image (81%)" in edit_warnings(READING, add)[0]
    assert edit_warnings(READING, diff_reports("No edema.", "Pulmonary edema.")) == []  # uncertain: no claim
    assert edit_warnings({}, remove) == []  # a model without a reading says nothing


def test_variant_labels_say_how_far_and_which_way_in_words() -> None:
    signs = {"Pleural Effusion": -1.0}
    assert variant_words({"Pleural Effusion": 0.62}, {"Pleural Effusion": 0.41}, signs) == \
        "pleural effusion 62% -> 41%: down, as asked"
    assert variant_words({"Pleural Effusion": 0.30}, {"Pleural Effusion": 0.45}, signs) == \
        "pleural effusion 30% -> 45%: up: the wrong way"
    assert variant_words({"Pleural Effusion": 0.30}, {"Pleural Effusion": 0.31}, signs).endswith("barely moved")


def test_a_change_beyond_the_blend_margin_fails_the_variant() -> None:
    rng = np.random.default_rng(0)
    original = rng.integers(0, 255, (64, 64)).astype(np.uint8)
    region = np.zeros((64, 64), bool)
    region[20:30, 40:50] = True
    weight = edit_weight(region, feather=4)
    decoded = original.copy()
    decoded[20:30, 40:50] = 200
    shown = transfer_edit(original, original, decoded, weight)
    assert outside_change(original, shown, weight) == 0.0  # the composite leaves the rest untouched
    smudged = shown.copy()
    smudged[2:10, 2:12] = 0  # a dark rectangle at the opposite shoulder
    assert outside_change(original, smudged, weight) > OUTSIDE_TOLERANCE
    with pytest.raises(ValueError, match="shapes differ"):
        outside_change(original, smudged[:32], weight)

    def variant(img: np.ndarray, failure: str = "") -> Variant:
        return Variant(0, img, img, difference_map(original, img), preservation(original, img, region), 0.0,
                       failure=failure)

    res = WhatIfResult(original, original, np.ones((4, 4), bool), region, weight, diff_reports("Effusion.", "No effusion."),
                       None, [variant(shown), variant(smudged, "it changed the image outside the edited region")])
    assert [v.failure for v in res.shown_variants] == [""] and len(res.failed_variants) == 1
