"""The engine replica: one loaded backend answering describe and job requests over HTTP.

Routes under the application's route prefix (default /radstation):
  GET  …/describe  -> JSON: the backend's describe() plus the service, replica and node
  POST …/jobs      -> body: {"kind", "params", "gated"} as one worker-protocol line (engines.worker.protocol: JSON,
                      arrays as base64 blocks; params: a typed request's wire form, engines.worker.requests,
                      a bad one answered 400 with the reason); response: a stream of protocol lines,
                      "progress" while the job runs, then one "result" (a typed result's wire form,
                      engines.backends.results), "error" or "cancelled". "gated" (default true) runs
                      the job as the worker does, behind the input gate (engines.scope.guard); false calls
                      the backend method itself, as `backend.draft(...)` in-process does.
A job runs on a thread so the replica's event loop keeps answering health checks; when the client goes
away (the radiologist pressed Cancel, the workstation closed) the request is cancelled and the job stops
at its next step. Each replica runs one job at a time (max_ongoing_requests), so Serve's router spreads a
worklist's drafts over the replicas and queues the rest.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import traceback
from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from engines.backends import BackendError, create_backend
from engines.backends.errors import is_out_of_memory
from engines.errors import Cancelled, JobCancelled
from engines.serve import SERVICE
from engines.worker.dispatch import provenance, run_direct, run_job
from engines.worker.protocol import PROTOCOL_VERSION, ProtocolError, decode, encode
from engines.worker.requests import JobRequest, RequestError, backend_request

PROGRESS_INTERVAL_S = 0.1
JOB_KINDS_SERVED = ("draft", "answer", "synthesise", "inpaint", "explain")


class EngineReplica:
    """Loads `engine` (a registered backend name, default the built-in diffusion engine) with `config`."""

    def __init__(self, engine: str = "diffusion", config: dict[str, Any] | None = None, threads: int = 1) -> None:
        if threads:
            import torch

            torch.set_num_threads(int(threads))  # replicas share a node's cores: one thread each by default
        self.engine = engine
        self.threads = int(threads)
        self.backend = create_backend(engine, **dict(config or {}))  # a BackendError fails the deployment
        self._lock = threading.Lock()  # one job at a time, even while a cancelled one winds down
        self.started = time.time()
        try:
            self.replica = serve.get_replica_context().replica_id.unique_id
        except Exception:  # noqa: BLE001 - constructed outside Serve (tests of the class itself)
            self.replica = f"local-{os.getpid()}"
        self.node = socket.gethostname()

    def describe(self) -> dict[str, Any]:
        info = dict(self.backend.describe())
        info.update({"service": SERVICE, "protocol": PROTOCOL_VERSION, "engine": self.engine, "replica": self.replica,
                     "node": self.node, "pid": os.getpid(), "threads": self.threads,
                     "capabilities": sorted(set(self.backend.capabilities) & set(JOB_KINDS_SERVED))})
        return info

    async def __call__(self, request: Request) -> Response:
        path = request.url.path.rstrip("/")
        if request.method == "GET" and path.endswith("/describe"):
            return JSONResponse(self.describe())
        if request.method == "POST" and path.endswith("/jobs"):
            try:
                msg = decode(await request.body())
            except ProtocolError as exc:
                return JSONResponse({"error": f"not a job request: {exc}"}, status_code=400)
            kind = str(msg.get("kind", ""))
            if kind not in JOB_KINDS_SERVED:
                return JSONResponse({"error": f"unknown job kind {kind!r}"}, status_code=400)
            try:  # the wire's edge: a typed request from here on
                job = backend_request(kind, dict(msg.get("params") or {}))
            except RequestError as exc:
                return JSONResponse({"error": f"bad job request: {exc}"}, status_code=400)
            return StreamingResponse(self._stream(job, bool(msg.get("gated", True))),
                                     media_type="application/x-ndjson")
        return JSONResponse({"error": f"no such route {request.method} {path}; use GET …/describe or POST …/jobs"},
                            status_code=404)

    async def _stream(self, job_request: JobRequest, gated: bool = True) -> AsyncIterator[bytes]:
        kind = job_request.kind
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        cancelled = threading.Event()
        last = [0.0]

        def progress(done: int, total: int, stage: str = "") -> None:
            now = time.monotonic()
            if done >= total or done == 0 or now - last[0] >= PROGRESS_INTERVAL_S:
                last[0] = now
                event: dict[str, Any] = {"type": "progress", "done": int(done), "total": int(total)}
                if stage:
                    event["stage"] = str(stage)
                loop.call_soon_threadsafe(events.put_nowait, event)

        def work() -> dict[str, Any]:
            with self._lock:
                if cancelled.is_set():
                    raise JobCancelled("cancelled before it started")
                run = run_job if gated else run_direct  # a worker's job is gated; a typed call is the bare method
                result = run(self.backend, job_request, progress, cancelled.is_set)
            result.provenance = {**provenance(self.backend, self.engine), "replica": self.replica, "node": self.node}
            return result.to_json()

        job = loop.run_in_executor(None, work)
        try:
            while True:
                getter = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield encode(getter.result())
                    continue
                getter.cancel()
                while not events.empty():
                    yield encode(events.get_nowait())
                yield encode(self._outcome(kind, job))
                return
        finally:
            cancelled.set()  # the client went away (or the job ended): a running job stops at its next step

    def _outcome(self, kind: str, job: asyncio.Future) -> dict[str, Any]:
        exc = job.exception()
        if exc is None:
            return {"type": "result", "result": job.result()}
        if isinstance(exc, Cancelled):  # any of the family (engines.errors)
            return {"type": "cancelled"}
        if is_out_of_memory(exc):
            return {"type": "error", "kind": "oom",
                    "message": f"the engine service ran out of memory on {getattr(self.backend, 'device', '?')} "
                               f"(replica {self.replica} on {self.node}) while running '{kind}': {exc}"}
        if isinstance(exc, BackendError):
            return {"type": "error", "kind": "backend", "message": str(exc)}
        traceback.print_exception(exc)
        return {"type": "error", "kind": "internal",
                "message": f"engine service error during '{kind}' (replica {self.replica} on {self.node}): "
                           f"{type(exc).__name__}: {exc}"}


def engine_deployment(*, replicas: int | None = 1, autoscale: tuple[int, int] | None = None,
                      cpus_per_replica: float = 1.0, gpus_per_replica: float = 0.0,
                      max_ongoing_requests: int = 1, health_check_timeout_s: float = 120.0) -> Any:
    """The replica class as a Serve deployment with these resources (fixed `replicas` or `autoscale`)."""
    options: dict[str, Any] = {
        "name": SERVICE,
        "ray_actor_options": {"num_cpus": float(cpus_per_replica), "num_gpus": float(gpus_per_replica)},
        "max_ongoing_requests": int(max_ongoing_requests),
        "health_check_timeout_s": float(health_check_timeout_s),
        "graceful_shutdown_timeout_s": 30.0,
    }
    if autoscale is not None:
        lo, hi = autoscale
        options["autoscaling_config"] = {"min_replicas": int(lo), "max_replicas": int(hi),
                                         "target_ongoing_requests": 1}
    else:
        options["num_replicas"] = int(replicas or 1)
    return serve.deployment(**options)(EngineReplica)


def build_app(args: dict[str, str]) -> Any:
    """For `serve run engines.serve.deployment:build_app replicas=2 model=/path gpus=1 …` (all optional)."""
    config: dict[str, Any] = {"device": args.get("device", "auto")}
    if args.get("model"):
        config["path"] = args["model"]
    autoscale = None
    if args.get("autoscale"):
        lo, _, hi = args["autoscale"].partition(":")
        autoscale = (int(lo), int(hi or lo))
    dep = engine_deployment(replicas=int(args.get("replicas", 1)), autoscale=autoscale,
                            cpus_per_replica=float(args.get("cpus", 1)), gpus_per_replica=float(args.get("gpus", 0)))
    return dep.bind(args.get("engine", "diffusion"), config, int(args.get("threads", 1)))
