"""What one sentence states, when two sentences contradict each other, and the template's section order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines.sentences.reading import conflicts, consistent_with, read_sentence
from engines.sentences.sections import DEFAULT_ORDER, check_order, section_order

TEMPLATES = Path(__file__).resolve().parents[3] / "resources" / "templates"


def test_a_sentence_reading_has_states_side_severity_location_and_section():
    r = read_sentence("Small right pleural effusion at the base.")
    assert r.states == {"Pleural Effusion": 1}
    assert (r.laterality, r.severity, r.section) == ("right", "mild", "pleura")
    assert "base" in r.location
    n = read_sentence("The heart is normal in size.")
    assert n.states.get("Cardiomegaly") == 0 and n.section == "heart" and n.is_normal_statement
    u = read_sentence("Possible left lower lobe pneumonia.")
    assert u.states == {"Pneumonia": -1} and u.laterality == "left"
    assert read_sentence("Bilateral effusions.").laterality == "bilateral"
    assert read_sentence("No acute bony abnormality.").section == "bones"


@pytest.mark.parametrize(("a", "b"), [
    ("The lungs are clear.", "Right lower lobe pneumonia."),  # a denied parent denies its children
    ("No pleural effusion.", "Small left pleural effusion."),
    ("Small right pleural effusion.", "Small left pleural effusion."),  # one finding on both sides
    ("Right lower lobe pneumonia.", "Possible pneumonia."),
])
def test_contradictions_are_found(a, b):
    ra, rb = read_sentence(a), read_sentence(b)
    assert conflicts(ra, rb) and conflicts(rb, ra)
    assert not consistent_with(rb, [ra])


@pytest.mark.parametrize(("a", "b"), [
    ("Heart size is normal.", "Right lower lobe pneumonia."),
    ("No pneumothorax.", "Small left pleural effusion."),
    ("Left basilar atelectasis.", "Left pleural effusion."),
])
def test_compatible_sentences_do_not_conflict(a, b):
    assert not conflicts(read_sentence(a), read_sentence(b))


def test_the_template_gives_the_section_order():
    chest = json.loads((TEMPLATES / "chest_xray.json").read_text())["sections"]["findings"]
    assert section_order(chest)[:4] == ("lungs", "pleura", "heart", "bones")
    assert section_order("Heart: normal.\nLungs: clear.")[:2] == ("heart", "lungs")
    assert section_order("") == DEFAULT_ORDER
    assert check_order(["pleura"])[0] == "pleura"
    with pytest.raises(ValueError, match="unknown report section"):
        check_order(["spleen"])


@pytest.mark.parametrize(("a", "b"), [
    ("Patchy bilateral opacities consistent with pneumonia.", "Right upper lobe pneumonia."),
    ("There is a right lower lobe pneumonia.", "Right upper lobe pneumonia."),
    ("There is a right lower lobe pneumonia.", "Left lower lobe pneumonia and scarring in the right lung base."),
])
def test_one_finding_in_two_places_conflicts(a, b):
    assert conflicts(read_sentence(a), read_sentence(b))
