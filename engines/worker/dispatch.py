"""One job on one loaded backend: the same dispatch for the local worker process and for served replicas.

The worker process (engines.worker.server) and a Ray Serve replica (engines.serve.deployment) both turn a
protocol job {"kind", "params"} into a typed request (engines.worker.requests.backend_request), run it, and
send the typed result's wire form (engines.backends.results, `to_json`), so a draft served by the
department's engine service is the very same call, with the same input gate (engines.scope.guard) and
validation, as one made on the workstation. A backend that is itself a client of such a service
(`forwards_jobs`) is handed the whole request, so the gate runs where the model is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engines.backends import EngineBackend
from engines.backends.results import JobResult
from engines.scope.guard import run_backend, run_gated
from engines.worker.requests import GatedRequest, JobRequest

ProgressFn = Callable[..., None]
CancelFn = Callable[[], bool]


def run_job(backend: EngineBackend, request: JobRequest, progress: ProgressFn, cancel: CancelFn) -> JobResult:
    """Run a job of the backend's own kinds (JOB_KINDS) as the app's worker does: behind the input gate
    when it reads images; a synthesis reads none, so nothing to gate."""
    if getattr(backend, "forwards_jobs", False):
        return backend.forward_job(request, progress, cancel)  # type: ignore[attr-defined]
    if isinstance(request, GatedRequest):
        return run_gated(backend, request, progress, cancel)
    return run_backend(backend, request, progress, cancel)


def run_direct(backend: EngineBackend, request: JobRequest, progress: ProgressFn, cancel: CancelFn) -> JobResult:
    """The backend method itself, without the input gate: what calling `backend.draft(...)` in-process does
    (benchmarks, a script), for a served engine's typed calls to mean the same as a local engine's."""
    return run_backend(backend, request, progress, cancel)


def provenance(backend: EngineBackend | None, engine_name: str) -> dict[str, Any]:
    """What a stored draft needs to be traced and reproduced: engine, model, weights hash, device."""
    return {"engine": engine_name, "model": str(getattr(backend, "path", "")),
            "weights_hash": str(getattr(backend, "weights_hash", "")), "device": str(getattr(backend, "device", ""))}
