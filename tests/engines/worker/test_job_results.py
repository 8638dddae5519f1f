"""The extra jobs' typed results (engines.worker.job_results): the same wire bytes as the handlers' dicts
had, rebuilt whole at the client's edge, and a result that is not its type refused with a ResultError
naming the field."""

from __future__ import annotations

import re

import numpy as np
import pytest

from engines.backends.results import OutOfScope, ResultError
from engines.counterfactual import WhatIfRequest
from engines.counterfactual.worker_jobs import whatif_from_result, whatif_job
from engines.models.tiny import make_tiny_checkpoint
from engines.pipeline import MedimPipeline
from engines.scope.gate import ImageScope, ScopeDecision
from engines.worker.client import typed_result
from engines.worker.job_results import ExplanationResult, SimilarCases, WhatIfOutput, WhatIfWarning
from engines.worker.protocol import decode, encode
from engines.worker.wire import to_wire

SCOPE = ScopeDecision(True, [ImageScope(0, True, [])], "on")
PROVENANCE = {"engine": "diffusion", "model": "m", "weights_hash": "abc", "device": "cpu"}


def _sent(result: dict) -> dict:
    """What the client reads: the worker adds provenance and the protocol carries it."""
    return decode(encode({"type": "result", "result": {**result, "provenance": PROVENANCE}}))["result"]


def _bytes(result: dict) -> bytes:
    return encode({"type": "result", "result": {**result, "provenance": PROVENANCE}})


def test_explanation_and_similar_cases_keep_the_handlers_wire_bytes_and_come_back_whole() -> None:
    arrays = {"grid_0": np.arange(6, dtype=np.float32).reshape(2, 3), "ids": np.array([1, 2])}
    for scope in (SCOPE, None):
        typed = ExplanationResult(meta='{"sentences": []}', arrays=arrays, engine_key="abc", scope=scope)
        before = {"kind": "explanation", "meta": '{"sentences": []}', "arrays": arrays, "engine_key": "abc",
                  "scope": scope.to_dict() if scope is not None else None}  # the handler's dict before
        assert _bytes(typed.to_json()) == _bytes(before)
        got = typed_result("explain_study", _sent(typed.to_json()))
        assert isinstance(got, ExplanationResult) and got.meta == typed.meta and got.engine_key == "abc"
        assert got.scope == scope and got.provenance == PROVENANCE
        np.testing.assert_array_equal(got.arrays["grid_0"], arrays["grid_0"])
        assert _bytes(got.to_json()) == encode({"type": "result", "result": _sent(typed.to_json())})

    hits = [{"case_id": "1.2.3", "score": 0.9, "origin": "site", "labels": {"Cardiomegaly": 1}}]
    similar = SimilarCases(hits=hits, notes=["dev index not used: gone"])
    assert _bytes(similar.to_json()) == _bytes({"kind": "similar", "hits": hits, "notes": ["dev index not used: gone"]})
    got = typed_result("similar", _sent(similar.to_json()))
    assert isinstance(got, SimilarCases) and got.hits == hits and got.notes == similar.notes


def test_whatif_results_keep_the_handlers_wire_bytes_and_come_back_whole(tmp_path) -> None:
    import torch

    torch.set_num_threads(1)
    pipe = MedimPipeline.from_pretrained(make_tiny_checkpoint(tmp_path / "tiny", text_len=48), device="cpu")

    class Backend:
        name = "diffusion"

        def __init__(self) -> None:
            self.pipe = pipe

    img = (np.random.default_rng(2).random((40, 48)) * 255).astype(np.uint8)
    req = WhatIfRequest(img, "Small left pleural effusion.", "No pleural effusion.", seeds=(0,), steps=2)
    out = whatif_job(Backend(), {"request": to_wire(req), "confirmed": True}, lambda *a: None, lambda: False)
    assert isinstance(out, WhatIfOutput) and out.scope is not None
    before = {"kind": "whatif", "result": to_wire(out.result), "scope": out.scope.to_dict()}
    assert _bytes(out.to_json()) == _bytes(before)
    got = typed_result("whatif", _sent(out.to_json()))
    res = whatif_from_result(got)
    assert [v.seed for v in res.variants] == [0] and res.edit.changes[0].finding == "Pleural Effusion"
    np.testing.assert_array_equal(res.token_mask, out.result.token_mask)
    assert _bytes(got.to_json()) == encode({"type": "result", "result": _sent(out.to_json())})

    warning = WhatIfWarning(warnings=["The engine's reading does not see lung lesion."],
                            reading={"Lung Lesion": {"answer": "no", "probability": 0.02}}, scope=SCOPE)
    before = {"kind": "whatif_warning", "warnings": warning.warnings, "reading": warning.reading,
              "scope": SCOPE.to_dict()}
    assert _bytes(warning.to_json()) == _bytes(before)
    assert typed_result("whatif", _sent(warning.to_json())) == WhatIfWarning(
        warnings=warning.warnings, reading=warning.reading, scope=SCOPE, provenance=PROVENANCE)


def test_a_stopped_extra_job_is_still_an_out_of_scope_and_another_plugin_keeps_its_dict() -> None:
    stopped = ScopeDecision(False, [ImageScope(0, False, ["Modality MR"])], "on")
    got = typed_result("whatif", _sent(OutOfScope(scope=stopped).to_json()))
    assert isinstance(got, OutOfScope) and "Modality MR" in got.message
    indexed = {"kind": "indexed", "case_id": "1.2.3", "total": 4}
    assert typed_result("index_case", indexed) is indexed


WHATIF_WIRE = {"__dataclass__": "engines.counterfactual.whatif:WhatIfRequest"}


@pytest.mark.parametrize(("kind", "result", "says"), [
    ("explain_study", {"kind": "explanation", "meta": "{}", "arrays": {}, "heatmaps": []},
     "unknown field(s): heatmaps"),
    ("explain_study", {"kind": "explanation", "arrays": {}}, "incomplete"),
    ("explain_study", {"kind": "explanation", "meta": "{}", "arrays": [1, 2]}, "field 'arrays' must be a mapping"),
    ("explain_study", {"kind": "explanation", "meta": 3, "arrays": {}}, "field 'meta' must be text"),
    ("explain_study", {"kind": "similar", "hits": []}, "the 'explain_study' job sent a result of kind 'similar'"),
    ("explain_study", {"meta": "{}", "arrays": {}}, "sent a result of kind None"),
    ("whatif", {"kind": "whatif"}, "incomplete"),
    ("whatif", {"kind": "whatif", "result": {"variants": []}}, "field 'result' must be a WhatIfResult"),
    ("whatif", {"kind": "whatif", "result": WHATIF_WIRE}, "field 'result' cannot be read"),
    ("whatif", {"kind": "whatif", "result": {"__dataclass__": "os:system"}}, "cannot be read: refusing"),
    ("whatif", {"kind": "whatif_warning", "warnings": "remove it"}, "field 'warnings' must be a list of sentences"),
    ("whatif", {"kind": "whatif_warning", "warnings": [], "scope": "in"}, "field 'scope' must be a mapping"),
    ("whatif", {"kind": "whatif_warning", "warnings": [], "scope": {"images": [{"x": 1}]}}, "malformed field"),
    ("similar", {"kind": "similar", "hits": ["1.2.3"]}, "field 'hits' must be a list of mappings"),
    ("similar", {"kind": "similar", "hits": [], "notes": [3]}, "field 'notes' must be a list of sentences"),
    ("similar", {"kind": "similar", "hits": [], "cases": []}, "unknown field(s): cases"),
])
def test_an_extra_result_that_is_not_its_type_is_a_result_error_naming_why(kind, result, says) -> None:
    with pytest.raises(ResultError, match=re.escape(says)):
        typed_result(kind, result)
