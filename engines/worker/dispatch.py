"""One job on one loaded backend: the same dispatch for the local worker process and for served replicas.

The worker process (engines.worker.server) and a Ray Serve replica (engines.serve.deployment) both turn a
protocol job {"kind", "params"} into a backend call and a JSON-able result dict, so a draft served by the
department's engine service is the very same call, with the same input gate (engines.scope.guard) and
validation, as one made on the workstation. A backend that is itself a client of such a service
(`forwards_jobs`) is handed the whole job, so the gate runs where the model is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from engines.backends import EngineBackend
from engines.scope.guard import run_gated

ProgressFn = Callable[..., None]
CancelFn = Callable[[], bool]


def run_job(backend: EngineBackend, kind: str, p: dict[str, Any], progress: ProgressFn,
            cancel: CancelFn) -> dict[str, Any]:
    """Run job `kind` (one of JOB_KINDS) with params `p`; returns the result dict."""
    if getattr(backend, "forwards_jobs", False):
        return backend.forward_job(kind, p, progress, cancel)  # type: ignore[attr-defined]
    common = {"progress": progress, "cancel": cancel}
    if kind == "synthesise":  # reads no image: nothing to gate
        return backend.synthesise(str(p.get("report", "")), steps=p.get("steps"), guidance=p.get("guidance"),
                                  seed=int(p.get("seed", 0)), **common).to_dict()
    return run_gated(backend, kind, p, **common)


def run_direct(backend: EngineBackend, kind: str, p: dict[str, Any], progress: ProgressFn,
               cancel: CancelFn) -> dict[str, Any]:
    """The backend method itself, without the input gate: what calling `backend.draft(...)` in-process does
    (benchmarks, a script), for a served engine's typed calls to mean the same as a local engine's."""
    common = {"progress": progress, "cancel": cancel}
    seed = int(p.get("seed", 0))
    if kind == "draft":
        options = {k: p[k] for k in ("mode", "section_order") if p.get(k) is not None
                   and k in inspect.signature(backend.draft).parameters}
        return backend.draft(list(p.get("images") or []), steps=p.get("steps"), guidance=p.get("guidance"),
                             seed=seed, **common, **options).to_dict()
    if kind == "answer":
        return backend.answer(list(p.get("images") or []), str(p.get("question", "")), steps=p.get("steps"),
                              seed=seed, **common).to_dict()
    if kind == "synthesise":
        return backend.synthesise(str(p.get("report", "")), steps=p.get("steps"), guidance=p.get("guidance"),
                                  seed=seed, **common).to_dict()
    if kind == "inpaint":
        return backend.inpaint(p["image"], p["token_mask"], str(p.get("report", "")), steps=p.get("steps"),
                               guidance=p.get("guidance"), seed=seed, **common).to_dict()
    if kind == "explain":
        return {"kind": "maps", "maps": backend.explain(list(p.get("images") or []), str(p.get("text", "")), **common)}
    raise ValueError(f"unknown job kind {kind!r}")


def provenance(backend: EngineBackend | None, engine_name: str) -> dict[str, Any]:
    """What a stored draft needs to be traced and reproduced: engine, model, weights hash, device."""
    return {"engine": engine_name, "model": str(getattr(backend, "path", "")),
            "weights_hash": str(getattr(backend, "weights_hash", "")), "device": str(getattr(backend, "device", ""))}
