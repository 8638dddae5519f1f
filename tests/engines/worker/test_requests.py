"""Typed job requests: the wire form both ends share (engines.worker.requests through the protocol)."""

from __future__ import annotations

import io
import re
from typing import ClassVar

import numpy as np
import pytest

from engines.backends import JOB_KINDS, EngineBackend, TextOutput, register_backend
from engines.worker.protocol import decode, encode
from engines.worker.requests import (
    BACKEND_REQUESTS,
    AnswerRequest,
    DraftRequest,
    ExplainStudyRequest,
    IndexCaseRequest,
    InpaintRequest,
    RegionMapRequest,
    RequestError,
    SimilarRequest,
    SynthesiseRequest,
    WhatIfJob,
    backend_request,
)
from engines.worker.server import WorkerServer

PA = {"Modality": "DX", "ViewPosition": "PA"}
IMG = (np.arange(12, dtype=np.uint16) * 300).reshape(3, 4)


def _over_the_wire(params: dict) -> dict:
    return decode(encode({"type": "job", "id": "job-1", "kind": "x", "params": params}))["params"]


@pytest.mark.parametrize("request_", [
    DraftRequest(images=(IMG, IMG), seed=3, steps=8, section_order=("findings", "impression"),
                 headers=({"Modality": "CR"}, {}), override_scope=True),
    AnswerRequest(images=(IMG,), question="Is there an effusion?"),
    RegionMapRequest(images=(IMG,), text="Is there an effusion? yes"),
    ExplainStudyRequest(images=(IMG,), text="Heart size normal.", draft={"__dataclass__": "x:Y"}, k_drafts=2,
                        ig_steps=2),
    WhatIfJob(request={"__dataclass__": "engines.counterfactual.whatif:WhatIfRequest"}, confirmed=True),
    SimilarRequest(images=(IMG,), k=3, exclude=("1.2.3",), cases_dir="/site"),
    IndexCaseRequest(images=(IMG,), case_id="1.2.3", findings="Clear lungs.", cases_url="postgresql://db/x"),
    InpaintRequest(image=IMG, token_mask=np.ones((2, 2), bool), report="Clear.", guidance=2, headers=(PA,)),
    SynthesiseRequest(report="Small left effusion.", steps=4, seed=9),
])
def test_every_request_survives_the_wire_and_comes_back_equal_in_kind_and_values(request_) -> None:
    params = _over_the_wire(request_.to_params())
    back = type(request_).from_params(params)
    assert back.kind == request_.kind
    for name, value in vars(request_).items():
        got = getattr(back, name)
        if name == "images":
            assert len(got) == len(value) and all(np.array_equal(a, b) and a.dtype == b.dtype
                                                  for a, b in zip(got, value, strict=True))
        elif isinstance(value, np.ndarray):
            assert np.array_equal(got, value) and got.dtype == value.dtype, name
        else:
            assert got == value, name


def test_unset_optional_fields_are_left_to_the_handler_default() -> None:
    params = DraftRequest(images=(IMG,)).to_params()
    assert set(params) == {"images", "headers", "override_scope", "seed"}
    assert params["images"][0] is IMG and isinstance(params["headers"], list)


def test_unknown_and_missing_parameters_are_named() -> None:
    with pytest.raises(ValueError, match="'explain_study' got unknown parameter\\(s\\): colour, type"):
        ExplainStudyRequest.from_params({"images": [IMG], "text": "x", "colour": 1, "type": "job"})
    with pytest.raises(ValueError, match="'answer'.*question"):
        AnswerRequest.from_params({"images": [IMG]})


@pytest.mark.parametrize(("make", "message"), [
    (lambda: DraftRequest(images=(IMG,), seed="3"), "'draft': seed must be an integer, not str '3'"),
    (lambda: DraftRequest(images=(IMG,), steps=2.5), "'draft': steps must be an integer or unset, not float 2.5"),
    (lambda: DraftRequest(images=(IMG,), override_scope="yes"), "override_scope must be true or false"),
    (lambda: DraftRequest(images=IMG), "'draft': images must be a list, not ndarray"),
    (lambda: DraftRequest(images=(IMG,), section_order=("findings", 2)), "section_order must be a list of a text"),
    (lambda: AnswerRequest(images=(IMG,), question=None), "'answer': question must be a text, not NoneType"),
    (lambda: DraftRequest(images=(IMG,), headers=("Modality=CR",)), "headers must be a list of a mapping"),
    (lambda: SimilarRequest(images=(IMG,), k=True), "'similar': k must be an integer, not bool"),
])
def test_a_value_of_the_wrong_type_is_named_with_what_it_must_be(make, message) -> None:
    with pytest.raises(RequestError, match=re.escape(message)):
        make()


def test_every_backend_job_kind_has_a_typed_request_and_nothing_else_is_run() -> None:
    assert set(BACKEND_REQUESTS) == set(JOB_KINDS)
    painted = backend_request("inpaint", _over_the_wire({"image": IMG, "token_mask": np.ones((2, 2), bool),
                                                          "report": "Clear.", "seed": 4}))
    assert isinstance(painted, InpaintRequest) and painted.gated_images()[0].shape == IMG.shape
    assert painted.with_images((IMG * 2,)).image[0, 1] == IMG[0, 1] * 2
    assert isinstance(backend_request("synthesise", {"report": "Normal."}), SynthesiseRequest)
    with pytest.raises(RequestError, match="unknown job kind 'shutdown'; the engine runs draft, answer"):
        backend_request("shutdown", {})
    with pytest.raises(RequestError, match="'draft': the parameters must be a mapping, not list"):
        DraftRequest.from_params([IMG])  # type: ignore[arg-type]


class _Counting(EngineBackend):
    """Counts the jobs that reach it: a refused request never does."""

    name = "counting-test"
    capabilities = frozenset({"draft", "answer"})
    calls: ClassVar[list[str]] = []

    def describe(self) -> dict:
        return {"name": self.name}

    def draft(self, images, **kw) -> TextOutput:
        self.calls.append("draft")
        return TextOutput(text="drafted")


def test_the_worker_answers_a_bad_request_as_such_and_goes_on() -> None:
    """A job whose params do not fit its request is a `bad_request` naming the parameter, not an engine crash;
    the backend never sees it, and the next job runs."""
    register_backend("counting-test", _Counting)
    log, out = io.StringIO(), io.BytesIO()
    messages = [{"type": "load", "backend": "counting-test", "config": {}},
                {"type": "job", "id": "bad", "kind": "draft", "params": {"images": [IMG], "seed": "one"}},
                {"type": "job", "id": "odd", "kind": "answer", "params": {"images": [IMG], "question": "?", "colour": 1}},
                {"type": "job", "id": "good", "kind": "draft", "params": {"images": [np.zeros((16, 16))]}}]
    WorkerServer(io.BytesIO(b"".join(encode(m) for m in messages)), out, log=log).serve()
    replies = {r.get("id"): r for r in (decode(line) for line in out.getvalue().splitlines()) if r["type"] != "status"}
    assert replies["bad"]["kind"] == "bad_request" and "seed must be an integer" in replies["bad"]["message"]
    assert replies["odd"]["kind"] == "bad_request" and "unknown parameter(s): colour" in replies["odd"]["message"]
    assert replies["good"]["type"] == "result" and replies["good"]["result"]["text"] == "drafted"
    assert _Counting.calls == ["draft"] and "Traceback" not in log.getvalue()
