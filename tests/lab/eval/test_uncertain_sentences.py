"""The doubtful-sentence threshold: what makes a drafted sentence wrong against the image labels, the lowest
threshold whose flags reach the target precision, grouped cross-validation and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from lab.eval.uncertain_sentences import (
    Unit,
    bootstrap_flags,
    choose_threshold,
    contradicted,
    cross_validate,
    flag_stats,
    units_of,
)


def test_a_sentence_is_wrong_when_the_labels_contradict_a_state_it_asserts() -> None:
    labels = {"Pneumonia": 1, "Lung Opacity": 1, "Cardiomegaly": 0}
    assert contradicted({"Pneumonia": 1}, labels) == ()
    assert contradicted({"Cardiomegaly": 1}, labels) == ("Cardiomegaly",)  # stated present, labelled absent
    assert contradicted({"Edema": 1}, labels) == ("Edema",)  # not labelled positive = not present (CE convention)
    assert contradicted({"Pneumonia": 0, "Edema": 0}, labels) == ("Pneumonia",)  # denied, labelled present
    assert contradicted({"Cardiomegaly": -1, "Pneumonia": -1}, labels) == ()  # hedges are not judged


def test_units_are_the_sentences_with_a_confidence() -> None:
    draft = {"image_id": "a", "group": "g", "sentences": [
        {"text": "The mediastinum is unremarkable.", "confidence": None, "states": {"Enlarged Cardiomediastinum": 0}},
        {"text": "The heart is enlarged.", "confidence": 0.15, "states": {"Cardiomegaly": 1}},
        {"text": "No pneumothorax.", "confidence": 0.9, "states": {"Pneumothorax": 0}}]}
    units = units_of(draft, {"Cardiomegaly": 0})
    assert [(u.text, round(u.score, 2), u.wrong) for u in units] == [("The heart is enlarged.", 0.85, True),
                                                                     ("No pneumothorax.", 0.1, False)]


def test_the_lowest_score_at_which_sentences_are_wrong_at_the_target_rate() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    wrong = np.array([1, 1, 0, 1, 1, 0, 0, 0, 0, 0], bool)
    # share wrong as a non-decreasing function of the score: 0 up to 0.4, 2/3 for 0.5-0.7 (pooled), 1 from 0.8
    assert choose_threshold(scores, wrong, 0.5, min_flags=1) == pytest.approx(0.5)
    assert choose_threshold(scores, wrong, 0.75, min_flags=1) == pytest.approx(0.8)
    assert choose_threshold(scores, wrong, 0.5, min_flags=6) is None  # only 5 sentences reach it
    # a cumulative rule would shade from 0.2 here (4 of 8 flags wrong); sentences at 0.2-0.4 are never wrong
    assert flag_stats(scores, wrong, 0.2).precision == 0.5
    st = flag_stats(scores, wrong, 0.5)
    assert (st.flagged, st.flagged_wrong, st.precision, st.recall) == (5, 4, 0.8, 1.0)
    assert flag_stats(scores, wrong, None).flagged == 0
    assert choose_threshold(np.array([0.456, 0.7, 0.8, 0.9, 0.95]), np.ones(5, bool)) == pytest.approx(0.45)  # 2 dp
    with pytest.raises(ValueError, match="target precision"):
        choose_threshold(scores, wrong, 0.0)


def test_cross_validation_holds_out_whole_groups_and_bootstrap_brackets_the_estimate() -> None:
    rng = np.random.default_rng(0)
    units = []
    for i in range(400):
        score = float(rng.uniform())
        units.append(Unit(f"img{i}", f"patient{i // 2}", "s", score, bool(rng.uniform() < score ** 2), ()))
    cv = cross_validate(units, 0.5)
    assert len(cv) == 5 and sum(r["units"] for r in cv) == 400
    from lab.eval.tune_sentences import fold_of

    for r in cv:  # each fold scored with the threshold chosen without it
        fit = [u for u in units if fold_of(u.group, 5) != r["fold"]]
        assert r["threshold"] == choose_threshold(np.array([u.score for u in fit]), np.array([u.wrong for u in fit]))
    # P(wrong | score) = score^2 reaches 0.5 at 0.71; the flags above it are wrong (1 + t + t^2) / 3 = 0.74
    assert all(0.5 < r["threshold"] < 0.85 for r in cv)  # ~320 sentences per choice: noisy
    held_prec = sum(r["flagged_wrong"] for r in cv) / sum(r["flagged"] for r in cv)
    assert 0.6 < held_prec < 0.9
    t = choose_threshold(np.array([u.score for u in units]), np.array([u.wrong for u in units]), 0.5)
    ci = bootstrap_flags(units, t, resamples=200)
    st = flag_stats(np.array([u.score for u in units]), np.array([u.wrong for u in units]), t)
    assert ci["precision"][0] <= st.precision <= ci["precision"][1]
    assert ci["recall"][0] <= st.recall <= ci["recall"][1]
