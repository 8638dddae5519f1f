"""Typed job results: the one wire form (to_json / result_from_json) survives the worker protocol unchanged,
and a result that is not one of them is refused with a message naming what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

from engines.backends.results import (
    ImageOutput,
    OutOfScope,
    Refused,
    RegionMaps,
    ResultError,
    TextOutput,
    TokenUncertainty,
    result_from_json,
)
from engines.scope.gate import InputGate
from engines.worker.protocol import decode, encode

PA = {"Modality": "DX", "BodyPartExamined": "CHEST", "ViewPosition": "PA", "PhotometricInterpretation": "MONOCHROME2"}
IMG = np.arange(64, dtype=np.uint8).reshape(8, 8)
PROVENANCE = {"engine": "diffusion", "model": "/weights", "weights_hash": "abc", "device": "cpu"}


def _decision(*headers: dict, override: bool = False):
    """A real gate's decision (header rules only: no statistics for these pixels)."""
    return InputGate(unavailable="no statistics in this test").check([IMG] * len(headers), list(headers),
                                                                      override=override)


def _over_the_wire(result) -> dict:
    return decode(encode({"type": "result", "id": "j", "result": result.to_json()}))["result"]


def test_a_draft_with_its_scope_and_provenance_comes_back_equal() -> None:
    draft = TextOutput(text="FINDINGS: Clear. IMPRESSION: Normal.", findings="Clear.", impression="Normal.",
                       tokens=[TokenUncertainty("Clear", 0.9, 0.2, "findings", 0, 5, 3)], confidence=0.9, steps=8,
                       seed=1, elapsed_s=0.5, images_used=[1], extra={"reading": {"Cardiomegaly": {"answer": "no"}}},
                       scope=_decision({**PA, "ViewPosition": "LL"}, PA), provenance=PROVENANCE)
    wire = _over_the_wire(draft)
    assert wire["kind"] == "text" and wire["scope"]["used"] == [1] and wire["provenance"] == PROVENANCE
    back = result_from_json(wire)
    assert back == draft and isinstance(back.tokens[0], TokenUncertainty)


def test_a_result_without_gate_or_provenance_has_the_same_wire_form_as_before() -> None:
    wire = TextOutput(text="yes", confidence=0.7).to_json()
    assert set(wire) == {"kind", "text", "findings", "impression", "tokens", "confidence", "steps", "seed",
                         "elapsed_s", "images_used", "extra"}
    assert TextOutput.from_json(wire) == TextOutput(text="yes", confidence=0.7)


def test_images_and_maps_keep_their_arrays() -> None:
    image = ImageOutput(image=IMG, steps=4, seed=2, maps={"effusion": IMG.astype(np.float32) / 64})
    back = result_from_json(_over_the_wire(image))
    assert isinstance(back, ImageOutput) and np.array_equal(back.image, IMG) and back.image.dtype == np.uint8
    assert np.allclose(back.maps["effusion"], IMG / 64) and back.steps == 4
    maps = result_from_json(_over_the_wire(RegionMaps(maps={"attention": IMG / 64.0}, scope=_decision(PA))))
    assert isinstance(maps, RegionMaps) and np.allclose(maps.maps["attention"], IMG / 64) and maps.scope.in_scope


def test_what_a_stopped_job_returns_says_why_and_nothing_else() -> None:
    stopped = OutOfScope(scope=_decision({"Modality": "MR"}))
    wire = _over_the_wire(stopped)
    assert wire["kind"] == "out_of_scope" and wire["text"] == "" and wire["message"].startswith("Out of scope")
    assert "Modality MR" in wire["scope"]["reason"] and result_from_json(wire) == stopped
    refused = Refused(reason="the engine reads no devices", can_answer="cardiomegaly, pleural effusion")
    wire = _over_the_wire(refused)
    assert wire == {"kind": "refused", "text": "", "reason": refused.reason, "can_answer": refused.can_answer}
    assert result_from_json(wire) == refused


def test_results_that_are_not_ours_are_refused_by_name() -> None:
    with pytest.raises(ResultError, match="unknown result kind 'essay'"):
        result_from_json({"kind": "essay", "text": "x"})
    with pytest.raises(ResultError, match="unknown field\\(s\\): colour, mood"):
        result_from_json({"kind": "text", "text": "x", "mood": 1, "colour": 2})
    with pytest.raises(ResultError, match="'text' result is incomplete.*text"):
        result_from_json({"kind": "text", "findings": "x"})
    with pytest.raises(ResultError, match="expected a 'image' result, got 'text'"):
        ImageOutput.from_json({"kind": "text", "text": "x"})
    with pytest.raises(ResultError, match="unknown result kind None"):
        result_from_json(["not", "a", "mapping"])  # type: ignore[arg-type]
