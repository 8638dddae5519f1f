"""The labeler on hand-written sentences with negation and uncertainty traps."""

from __future__ import annotations

import pytest

from engines.labeler import FINDINGS, label_report


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No pneumothorax.", {"Pneumothorax": 0}),
        ("Cannot exclude effusion.", {"Pleural Effusion": -1}),
        ("A small effusion cannot be excluded.", {"Pleural Effusion": -1}),
        ("Resolved consolidation.", {"Consolidation": 0}),
        ("The right lower lobe consolidation has resolved.", {"Consolidation": 0}),
        ("No evidence of focal consolidation or effusion.", {"Consolidation": 0, "Pleural Effusion": 0}),
        ("Heart size is normal.", {"Cardiomegaly": 0}),
        ("The heart is not enlarged.", {"Cardiomegaly": 0}),
        ("Mild cardiomegaly.", {"Cardiomegaly": 1}),
        ("No pneumothorax, pleural effusion, or focal airspace consolidation.",
         {"Pneumothorax": 0, "Pleural Effusion": 0, "Consolidation": 0}),
        ("Right lower lobe opacity may represent atelectasis or pneumonia.",
         {"Lung Opacity": 1, "Atelectasis": -1, "Pneumonia": -1}),
        ("No effusion but there is a right pneumothorax.", {"Pleural Effusion": 0, "Pneumothorax": 1}),
        ("No interval change in the moderate cardiomegaly.", {"Cardiomegaly": 1}),
        ("Pneumonia is in the differential.", {"Pneumonia": -1}),
        ("Left PICC line tip in the SVC.", {"Support Devices": 1}),
        ("Healed right rib fracture.", {"Fracture": 1}),
        ("The lungs are grossly clear of focal airspace disease, pneumothorax, or pleural effusion.",
         {"Pneumothorax": 0, "Pleural Effusion": 0}),
        ("No suspicious pulmonary opacity.", {"Lung Opacity": 0}),
        ("There is no pleural line to suggest pneumothorax.", {"Pneumothorax": 0}),
        ("If there is concern for fracture, consider a rib series.", {"Fracture": 0}),
        ("Enlarging thyroid mass.", {}),
        ("Widening of the upper mediastinum.", {"Enlarged Cardiomediastinum": 1}),
        ("Pulmonary vascularity is within normal limits.", {"Edema": 0}),
        ("Lines and tubes: none.", {"Support Devices": 0}),
        ("Lines and tubes: [none|...].", {"Support Devices": 0}),
        ("Pneumothorax: absent. Pleural effusion: small left.", {"Pneumothorax": 0, "Pleural Effusion": 1}),
        ("Lines and tubes: endotracheal tube in place.", {"Support Devices": 1}),
        ("Lines and tubes:             .", {}),  # a template field left blank states nothing
        ("Pleural effusion: small left.", {"Pleural Effusion": 1}),
    ],
)
def test_trap_sentences(text: str, expected: dict[str, int]) -> None:
    found = label_report(text).findings
    if not expected:
        assert set(found) <= {"No Finding"}, (text, found)
    for finding, value in expected.items():
        assert found.get(finding) == value, (text, found)


def test_no_finding_follows_pathologies() -> None:
    assert label_report("Heart size is normal. The lungs are clear.").findings.get("No Finding") == 1
    assert "No Finding" not in label_report("Mild cardiomegaly. No effusion.").findings
    # Support devices do not make a study abnormal (CheXpert's rule).
    assert label_report("Sternotomy wires. Lungs are clear.").findings.get("No Finding") == 1


def test_sentences_carry_offsets_and_their_own_findings() -> None:
    text = "No pneumothorax. Small left pleural effusion.\nMild cardiomegaly."
    result = label_report(text)
    assert [s.text for s in result.sentences] == ["No pneumothorax.", "Small left pleural effusion.", "Mild cardiomegaly."]
    for s in result.sentences:
        assert text[s.start : s.end] == s.text
    assert result.sentences[0].findings == {"Pneumothorax": 0}
    assert result.sentences[1].findings == {"Pleural Effusion": 1}
    assert result.findings["Pleural Effusion"] == 1 and result.findings["Pneumothorax"] == 0


def test_positive_mention_wins_over_negated_one_in_another_sentence() -> None:
    assert label_report("No effusion on the left. Small right effusion.").findings["Pleural Effusion"] == 1


def test_findings_constant_is_chexpert_order() -> None:
    assert FINDINGS[0] == "No Finding" and FINDINGS[-1] == "Support Devices" and len(FINDINGS) == 14


def test_empty_text_is_no_finding() -> None:
    assert label_report("").findings == {"No Finding": 1}
