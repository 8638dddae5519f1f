"""What a finding-conditioned model is told: the head's reading for drafts, the report's findings for images."""

from __future__ import annotations

import math

import pytest

from engines.sampling.finding_states import state_row, states_from_head, states_from_report

FINDINGS = ("No Finding", "Lung Opacity", "Pleural Effusion")
PRIOR = {"No Finding": 0.25, "Lung Opacity": 0.6, "Pleural Effusion": 0.06}


def test_a_study_the_head_finds_likelier_normal_than_usual_is_told_normal():
    probs = {"No Finding": 0.4, "Lung Opacity": 0.7, "Pleural Effusion": 0.2}  # all above prior
    assert states_from_head(probs, PRIOR, FINDINGS) == {"No Finding": 1.0, "Lung Opacity": 0.0,
                                                         "Pleural Effusion": 0.0}


def test_otherwise_each_finding_likelier_than_its_prevalence_is_present():
    probs = {"No Finding": 0.1, "Lung Opacity": 0.5, "Pleural Effusion": 0.1}
    assert states_from_head(probs, PRIOR, FINDINGS) == {"No Finding": 0.0, "Lung Opacity": 0.0,
                                                         "Pleural Effusion": 1.0}
    # Nothing likelier than usual and not normal either: told normal rather than a contradiction.
    probs = {"No Finding": 0.2, "Lung Opacity": 0.5, "Pleural Effusion": 0.05}
    assert states_from_head(probs, PRIOR, FINDINGS)["No Finding"] == 1.0


def test_missing_prevalence_is_a_clear_error():
    with pytest.raises(ValueError, match="finding_prior"):
        states_from_head({"No Finding": 0.5}, {}, ("No Finding",))


def test_report_states_follow_the_labeler():
    s = states_from_report("Small left pleural effusion. No pneumothorax.", FINDINGS)
    assert s == {"No Finding": 0.0, "Lung Opacity": 0.0, "Pleural Effusion": 1.0}
    s = states_from_report("No acute cardiopulmonary abnormality.", FINDINGS)
    assert s["No Finding"] == 1.0 and s["Pleural Effusion"] == 0.0
    s = states_from_report("Possible small pleural effusion.", FINDINGS)
    assert math.isnan(s["Pleural Effusion"])  # uncertain: not told
    assert state_row(s, FINDINGS)[0] == 1.0


def test_head_guidance_pushes_only_what_a_report_states_present():
    from engines.sampling.finding_states import present_push

    states = states_from_report("Small left pleural effusion. No pneumothorax.", FINDINGS)
    assert present_push(states) == {"Pleural Effusion": 1.0}
    assert present_push(states_from_report("No acute abnormality.", FINDINGS)) == {"No Finding": 1.0}
