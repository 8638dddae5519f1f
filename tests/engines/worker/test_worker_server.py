"""The server loop in-process: a backend that really exhausts memory is reported as OOM, not a crash."""

from __future__ import annotations

import io

import numpy as np

from engines.backends import EngineBackend, TextOutput, register_backend
from engines.worker.protocol import decode, encode
from engines.worker.server import WorkerServer


class _Greedy(EngineBackend):
    """Drafts by allocating an impossible buffer: numpy raises a genuine MemoryError."""

    name = "greedy"
    capabilities = frozenset({"draft"})
    device = "cpu"

    def describe(self) -> dict:
        return {"name": self.name, "device": self.device}

    def draft(self, images, **kw) -> TextOutput:
        np.empty((1 << 60,), dtype=np.uint8)
        return TextOutput(text="unreachable")


def _serve(*messages: dict) -> list[dict]:
    out = io.BytesIO()
    WorkerServer(io.BytesIO(b"".join(encode(m) for m in messages)), out, log=io.StringIO()).serve()
    return [decode(line) for line in out.getvalue().splitlines()]


def test_out_of_memory_becomes_a_clear_error_and_the_loop_continues() -> None:
    register_backend("greedy-test", _Greedy)
    replies = _serve({"type": "load", "backend": "greedy-test", "config": {}},
                     {"type": "job", "id": "a", "kind": "draft", "params": {"images": [np.zeros((16, 16))]}},
                     {"type": "job", "id": "b", "kind": "answer", "params": {"images": [np.zeros((16, 16))],
                                                                          "question": "Is there an effusion?"}})
    kinds = [(r["type"], r.get("id"), r.get("kind")) for r in replies if r["type"] != "status"]
    assert kinds[0] == ("ready", None, None)
    oom = next(r for r in replies if r["type"] == "error" and r["id"] == "a")
    assert oom["kind"] == "oom" and "ran out of memory on cpu" in oom["message"]
    assert next(r for r in replies if r["type"] == "error" and r["id"] == "b")["kind"] == "backend"


def test_jobs_without_a_loaded_engine_say_why() -> None:
    replies = _serve({"type": "load", "backend": "no-such-engine", "config": {}},
                     {"type": "job", "id": "a", "kind": "draft", "params": {}})
    assert replies[0]["type"] == "load_failed" and "unknown engine" in replies[0]["message"]
    assert replies[1]["type"] == "error" and "unknown engine" in replies[1]["message"]


def test_a_job_cancelled_before_it_starts_never_runs() -> None:
    register_backend("greedy-test", _Greedy)
    out = io.BytesIO()
    server = WorkerServer(io.BytesIO(), out, log=io.StringIO())
    server._cancelled.add("x")
    server._run_job({"type": "job", "id": "x", "kind": "draft", "params": {}})
    assert decode(out.getvalue().splitlines()[0]) == {"type": "cancelled", "id": "x"}
