"""The written question list (lab/eval/data/scope_questions.json): every out-of-scope question is refused
with a reason and the sentence of what the engine can answer; every in-scope one maps to its finding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines.qa.scope import question_scope

ROOT = Path(__file__).resolve().parents[3]
ROWS = json.loads((ROOT / "lab" / "eval" / "data" / "scope_questions.json").read_text())["questions"]
FINDINGS = tuple(json.loads((ROOT / "resources" / "weights" / "medim-small" / "config.json").read_text())
                 ["model"]["findings"])


def test_the_list_is_long_enough_and_balanced() -> None:
    n_in = sum(r["in_scope"] for r in ROWS)
    assert len(ROWS) >= 60 and n_in == len(ROWS) - n_in
    assert {r["topic"] for r in ROWS if not r["in_scope"]} >= {"devices", "location", "size", "comparison"}


@pytest.mark.parametrize("row", [r for r in ROWS if not r["in_scope"]], ids=lambda r: r["question"])
def test_out_of_scope_questions_are_refused(row) -> None:
    s = question_scope(row["question"], FINDINGS)
    assert not s.in_scope and s.reason and s.finding is None
    assert s.can_answer.startswith("I can say whether this frontal chest radiograph shows")


@pytest.mark.parametrize("row", [r for r in ROWS if r["in_scope"]], ids=lambda r: r["question"])
def test_in_scope_questions_name_their_finding(row) -> None:
    s = question_scope(row["question"], FINDINGS)
    assert s.in_scope and s.finding == row["finding"], s.reason


def test_engines_without_a_finding_list_keep_the_general_rule() -> None:
    assert question_scope("Where is the nodule?").in_scope  # a general VLM may answer it
    assert not question_scope("What is the patient's name?").in_scope
    assert not question_scope("Should we start antibiotics?").in_scope
