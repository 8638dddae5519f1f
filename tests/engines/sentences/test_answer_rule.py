"""One reading everywhere: a sentence draft never states present what the yes/no answer calls absent."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from engines.pipeline import MedimPipeline

SHIPPED = Path(__file__).resolve().parents[3] / "resources" / "weights" / "medim-small"


@pytest.fixture(scope="module")
def pipe() -> MedimPipeline:
    if not (SHIPPED / "config.json").is_file():
        pytest.skip("shipped weights not present")
    return MedimPipeline.from_pretrained(SHIPPED, device="cpu")


def _reading(pipe: MedimPipeline, finding: str, p: float, answer_rule: bool):
    settings = replace(pipe.decode_settings, case_weight=0.0, case_bonus=0.0, answer_rule=answer_rule)
    reader = {f: float(pipe.finding_prior.get(f, 0.1)) * 0.5 for f in pipe.reading_findings}
    reader["No Finding"] = 0.01  # not a normal study: pathologies are read one by one
    reader[finding] = p
    reading, _ = pipe.study_reading([], settings, reader=reader)
    return reading.states[finding]


def test_a_rare_finding_just_above_prevalence_is_not_stated_when_the_answer_is_no(pipe):
    prev = float(pipe.finding_prior["Pneumothorax"])
    p = min(prev * 1.5, 0.3)  # above the draft's threshold (prevalence x scale), below twice the odds
    cal = pipe.answer_calibration()
    assert cal.answer(p, prev) == "no"
    assert _reading(pipe, "Pneumothorax", p, answer_rule=False) == 1  # the draft rule alone would state it
    assert _reading(pipe, "Pneumothorax", p, answer_rule=True) == 0


def test_a_finding_the_answer_does_not_deny_is_still_stated(pipe):
    prev = float(pipe.finding_prior["Pleural Effusion"])
    p = 0.8
    assert pipe.answer_calibration().answer(p, prev) == "yes"
    assert _reading(pipe, "Pleural Effusion", p, answer_rule=True) == 1
