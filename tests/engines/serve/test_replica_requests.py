"""The replica's HTTP edge without a cluster: a job message becomes a typed request before anything runs
(a bad one is HTTP 400 naming the parameter), and the result streams back in the typed results' wire form."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from engines.backends import EngineBackend, TextOutput, register_backend
from engines.backends.results import result_from_json
from engines.worker.protocol import decode, encode

serve_deployment = pytest.importorskip("engines.serve.deployment", reason="ray[serve] is not installed")


class _Echo(EngineBackend):
    """Drafts the number of images it was given: shows which images the gate let through."""

    name = "echo-test"
    capabilities = frozenset({"draft"})
    device = "cpu"

    def describe(self) -> dict:
        return {"name": self.name, "device": self.device}

    def draft(self, images, *, steps=None, guidance=None, seed=0, progress=None, cancel=None) -> TextOutput:
        return TextOutput(text=f"{len(images)} image(s), seed {seed}", seed=seed, images_used=list(range(len(images))))


def _call(replica, body: bytes) -> tuple[int, list[bytes]]:
    async def go():
        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        from starlette.requests import Request

        scope = {"type": "http", "method": "POST", "path": "/radstation/jobs", "headers": [], "query_string": b"",
                 "server": ("replica", 8000), "scheme": "http", "root_path": ""}
        response = await replica(Request(scope, receive))
        if hasattr(response, "body_iterator"):
            return response.status_code, [chunk async for chunk in response.body_iterator]
        return response.status_code, [response.body]

    return asyncio.run(go())


@pytest.fixture(scope="module")
def replica():
    register_backend("echo-test", _Echo)
    return serve_deployment.EngineReplica("echo-test", {}, threads=0)


def _job(params: dict, gated: bool = True) -> bytes:
    return encode({"type": "job", "kind": "draft", "params": params, "gated": gated})


def test_a_draft_streams_back_as_a_typed_result_with_the_replicas_provenance(replica) -> None:
    image = np.zeros((16, 16), np.float32)
    code, chunks = _call(replica, _job({"images": [image, image], "seed": 3}))
    last = decode(chunks[-1])
    assert code == 200 and last["type"] == "result", last
    draft = result_from_json(last["result"])
    assert isinstance(draft, TextOutput) and draft.text == "2 image(s), seed 3" and draft.seed == 3
    assert draft.scope is not None and draft.images_used == [0, 1]  # the gate ran (header rules only)
    assert draft.provenance["engine"] == "echo-test" and draft.provenance["replica"] == replica.replica
    code, chunks = _call(replica, _job({"images": [image]}, gated=False))  # the bare method: no gate
    bare = result_from_json(decode(chunks[-1])["result"])
    assert bare.scope is None and bare.text == "1 image(s), seed 0"


@pytest.mark.parametrize(("params", "reason"), [
    ({"images": [np.zeros((16, 16))], "seed": "three"}, "'draft': seed must be an integer, not str 'three'"),
    ({"images": [np.zeros((16, 16))], "temperature": 0.7}, "'draft' got unknown parameter(s): temperature"),
    ({"seed": 1}, "'draft'"),
])
def test_a_bad_job_is_refused_before_it_runs_with_the_reason(replica, params, reason) -> None:
    code, chunks = _call(replica, _job(params))
    assert code == 400
    message = json.loads(b"".join(chunks))["error"]
    assert message.startswith("bad job request: ") and reason in message
