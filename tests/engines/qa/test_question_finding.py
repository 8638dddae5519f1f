"""question_finding: a yes/no question maps to the one finding it asks about, or to none."""

from __future__ import annotations

import pytest

from engines.qa.question_finding import question_finding
from lab.data.qa import QUESTION_NAME

HEAD = ("No Finding", "Cardiomegaly", "Lung Opacity", "Pneumonia", "Pleural Effusion", "Edema")


@pytest.mark.parametrize(("question", "finding"), [
    ("Is there pneumonia?", "Pneumonia"),
    ("Any effusion?", "Pleural Effusion"),
    ("Is the heart enlarged?", "Cardiomegaly"),
    ("Is this chest radiograph normal?", "No Finding"),
    ("Is there a fracture?", None),  # not a finding the head knows
    ("Is there pneumonia or effusion?", None),  # two findings
    ("Is there no pneumonia?", None),  # negated
    ("Is the left lung clear?", None),  # a side, not presence
    ("Where is the opacity?", None),
    ("", None),
])
def test_question_maps_to_one_head_finding(question, finding):
    assert question_finding(question, HEAD) == finding


def test_every_derived_presence_question_of_a_head_finding_maps_to_it():
    for f in HEAD[1:]:
        assert question_finding(f"Is there {QUESTION_NAME[f]}?", HEAD) == f
