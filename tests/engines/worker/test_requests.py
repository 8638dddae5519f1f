"""Typed job requests: the wire form both ends share (engines.worker.requests through the protocol)."""

from __future__ import annotations

import numpy as np
import pytest

from engines.worker.protocol import decode, encode
from engines.worker.requests import (
    AnswerRequest,
    DraftRequest,
    ExplainStudyRequest,
    IndexCaseRequest,
    RegionMapRequest,
    SimilarRequest,
    WhatIfJob,
)

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
