from __future__ import annotations

import pytest

from engines.counterfactual.edits import EditError, apply_instruction, diff_reports, findings_named
from engines.labeler import label_report

EFFUSION = ("The heart is normal in size. Small left pleural effusion. The lungs are clear.\n\n"
            "IMPRESSION: Small left effusion.")
NORMAL = ("The heart is normal in size. The lungs are clear. No pleural effusion or pneumothorax.\n\n"
          "IMPRESSION: No acute cardiopulmonary abnormality.")


def test_diff_finds_the_changed_finding_and_its_sentences() -> None:
    edited = EFFUSION.replace("Small left pleural effusion.", "No pleural effusion.").replace(
        "Small left effusion.", "No acute cardiopulmonary abnormality.")
    e = diff_reports(EFFUSION, edited)
    assert [(c.finding, c.kind) for c in e.changes] == [("Pleural Effusion", "remove")]
    assert [s.text for s in e.added_sentences] == ["No pleural effusion."]
    assert "Small left pleural effusion." in [s.text for s in e.removed_sentences]
    assert "The heart is normal in size." not in [s.text for s in e.removed_sentences + e.added_sentences]


def test_diff_of_identical_reports_is_empty_and_empty_edit_is_an_error() -> None:
    assert diff_reports(NORMAL, NORMAL).changes == ()
    with pytest.raises(EditError, match="empty"):
        diff_reports(NORMAL, "   ")


def test_remove_instruction_makes_the_labeler_see_the_finding_absent() -> None:
    out = apply_instruction(EFFUSION, "remove the effusion")
    lab = label_report(out)
    assert lab.findings.get("Pleural Effusion") == 0
    assert "The heart is normal in size." in out and "IMPRESSION:" in out
    assert "No acute cardiopulmonary abnormality." in out  # the impression is never left empty


@pytest.mark.parametrize(("instruction", "finding"), [
    ("add a right upper lobe nodule", "Lung Lesion"),
    ("add an effusion", "Pleural Effusion"),
    ("add cardiomegaly", "Cardiomegaly"),
])
def test_add_instruction_makes_the_labeler_see_the_finding(instruction: str, finding: str) -> None:
    out = apply_instruction(NORMAL, instruction)
    assert label_report(out).findings.get(finding) == 1
    assert "No acute cardiopulmonary abnormality" not in out  # contradicting normal impression dropped
    assert [c.finding for c in diff_reports(NORMAL, out).changes] == [finding]


def test_bad_instructions_give_clear_errors() -> None:
    with pytest.raises(EditError, match="remove"):
        apply_instruction(NORMAL, "make it prettier")
    with pytest.raises(EditError, match="no finding recognised"):
        apply_instruction(NORMAL, "add a smile")
    with pytest.raises(EditError, match="does not mention"):
        apply_instruction(NORMAL, "remove the effusion")
    with pytest.raises(EditError, match="empty"):
        apply_instruction(NORMAL, "")


def test_findings_named_uses_the_labeler_vocabulary() -> None:
    assert findings_named("the effusion") == ["Pleural Effusion"]
    assert findings_named("right upper lobe nodule") == ["Lung Lesion"]
