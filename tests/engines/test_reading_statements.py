"""Where a text and the engine's reading part ways: a firm statement against a "yes"/"no" reading is a
disagreement; a firm statement (present or absent) of a finding the reading answers "uncertain" is stated
although the reading is uncertain; hedged mentions are neither."""

from __future__ import annotations

from engines.reading import disagreements, uncertain_statements

READING = {
    "Cardiomegaly": {"probability": 0.30, "answer": "uncertain"},
    "Pneumothorax": {"probability": 0.04, "answer": "uncertain"},
    "Pleural Effusion": {"probability": 0.03, "answer": "no"},
    "Edema": {"probability": 0.20, "answer": "uncertain"},
}


def test_firm_statements_of_uncertain_findings_are_named_with_the_reading() -> None:
    text = "The heart is enlarged. No pneumothorax. No pleural effusion. Possible mild pulmonary edema."
    got = {u.finding: u for u in uncertain_statements(READING, text)}
    assert set(got) == {"Cardiomegaly", "Pneumothorax"}  # edema is hedged, effusion's reading is a plain "no"
    assert got["Cardiomegaly"].text_state == "present" and got["Pneumothorax"].text_state == "absent"
    assert got["Cardiomegaly"].sentence() == ("The draft states cardiomegaly although the engine's reading is "
                                              "uncertain (30%)")
    assert "says there is no pneumothorax" in got["Pneumothorax"].to_dict()["sentence"]
    assert not disagreements(READING, text)  # none of them is a disagreement


def test_a_text_that_does_not_mention_an_uncertain_finding_has_nothing_to_say() -> None:
    assert uncertain_statements(READING, "Clear lungs.") == []
    assert uncertain_statements({}, "The heart is enlarged.") == []
