"""The worker client types a finished job's result once, at the wire's edge (typed_result)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from engines.backends.results import (
    ImageOutput,
    OutOfScope,
    Refused,
    ResultError,
    TextOutput,
    TokenUncertainty,
)
from engines.scope.gate import ImageScope, ScopeDecision
from engines.worker.client import typed_result
from engines.worker.job_results import ExplanationResult
from engines.worker.protocol import decode, encode


def _wire(result) -> dict:
    return decode(encode({"type": "result", "result": result.to_json()}))["result"]  # what the client reads


def test_the_engine_jobs_results_arrive_typed() -> None:
    text = TextOutput(text="Clear.", findings="Clear.", tokens=[TokenUncertainty("Clear", 0.9, 0.1, "findings", 0, 5)],
                      provenance={"engine": "diffusion"})
    got = typed_result("draft", _wire(text))
    assert got == text
    image = typed_result("synthesise", _wire(ImageOutput(image=np.zeros((4, 4), np.uint8))))
    assert isinstance(image, ImageOutput) and image.image.shape == (4, 4)
    refused = typed_result("answer", _wire(Refused(reason="devices are not read", can_answer="findings")))
    assert isinstance(refused, Refused) and refused.reason == "devices are not read"


def test_extra_kinds_arrive_typed_and_a_stopped_one_is_an_out_of_scope() -> None:
    explanation = typed_result("explain_study", {"kind": "explanation", "meta": "{}", "arrays": {}})
    assert isinstance(explanation, ExplanationResult) and explanation.meta == "{}"
    indexed = {"kind": "indexed", "case_id": "1.2.3", "total": 1}  # a kind without a result type: its dict
    assert typed_result("index_case", indexed) is indexed
    scope = ScopeDecision(False, [ImageScope(0, False, ["Modality MR"])], "on")
    stopped = typed_result("explain_study", _wire(OutOfScope(scope=scope)))
    assert isinstance(stopped, OutOfScope) and "Modality MR" in stopped.message


@pytest.mark.parametrize(("kind", "result", "says"), [
    ("draft", {"kind": "text", "text": "x", "calibration_curve": [1]}, "unknown field(s): calibration_curve"),
    ("draft", {"kind": "text"}, "incomplete"),
    ("draft", {"kind": "report", "text": "x"}, "unknown result kind 'report'"),
    ("draft", {"text": "x"}, "unknown result kind None"),
    ("draft", ["x"], "not a mapping"),
    ("answer", {"kind": "text", "text": "x", "tokens": [{"word": "x"}]}, "unexpected keyword argument 'word'"),
    ("explain_study", {"kind": "out_of_scope", "scope": {"images": [{"colour": 1}]}}, "malformed field"),
])
def test_a_result_that_is_not_its_type_is_a_result_error_naming_why(kind, result, says) -> None:
    with pytest.raises(ResultError, match=re.escape(says)):
        typed_result(kind, result)
