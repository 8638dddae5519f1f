"""The engine worker's loop: load one backend, run jobs one at a time, stream progress, honour cancel.

A reader thread takes messages off stdin so a cancel arrives while a job runs; the job itself runs on
the main thread and polls a per-job flag through the backend's `cancel` callback. Closing stdin (the
app died) ends the worker, so no orphan keeps the GPU.

The extra job kinds (explanations, what-if, similar cases: engines.worker.jobs) look inside the built-in
diffusion engine. When another engine is loaded they run on the built-in engine's weights loaded beside it,
once, in this same process (the load config's "internals_path", default the shipped weights), so the app
needs one worker for every job.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
import traceback
from typing import Any, BinaryIO

from engines.backends import JOB_KINDS, BackendError, EngineBackend, create_backend
from engines.backends.errors import is_out_of_memory
from engines.backends.results import JobResult
from engines.default_weights import DEFAULT_WEIGHTS
from engines.errors import Cancelled
from engines.worker.dispatch import provenance, run_job
from engines.worker.jobs import JobHandler
from engines.worker.protocol import PROTOCOL_VERSION, ProtocolError, decode, encode
from engines.worker.requests import RequestError, backend_request

PROGRESS_INTERVAL_S = 0.05


class WorkerServer:
    def __init__(self, stdin: BinaryIO, stdout: BinaryIO, log: Any = None,
                 jobs: dict[str, JobHandler] | None = None) -> None:
        self._in, self._out = stdin, stdout
        self._extra_jobs = dict(jobs or {})  # kinds contributed by other packages (engines.worker.jobs)
        self._log = log or sys.stderr
        self._write_lock = threading.Lock()
        self._jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._cancelled: set[str] = set()
        self._backend: EngineBackend | None = None
        self._internals: EngineBackend | None = None  # the built-in engine beside another one (extra jobs)
        self._internals_config: dict[str, Any] = {}
        self._backend_name = ""
        self._load_error = ""
        self._current: str | None = None

    # -- output -------------------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        data = encode(message)
        with self._write_lock:
            self._out.write(data)
            self._out.flush()

    def status(self) -> dict[str, Any]:
        base: dict[str, Any] = {"protocol": PROTOCOL_VERSION, "state": "busy" if self._current else "idle",
                                "job": self._current}
        if self._backend is not None:
            try:
                base.update(self._backend.describe())
            except Exception as exc:  # a status query must never kill the worker
                base["describe_error"] = str(exc)
        else:
            base.update({"name": self._backend_name, "error": self._load_error})
        return base

    # -- input --------------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        for line in iter(self._in.readline, b""):
            if not line.strip():
                continue
            try:
                msg = decode(line)
            except ProtocolError as exc:
                print(f"engine worker: {exc}", file=self._log, flush=True)
                continue
            kind = msg["type"]
            if kind == "cancel":
                self._cancelled.add(str(msg.get("id")))
            elif kind == "status":
                self.send({"type": "status", "status": self.status()})
            elif kind == "shutdown":
                break
            else:
                self._jobs.put(msg)
        self._jobs.put(None)

    def serve(self) -> int:
        threading.Thread(target=self._read_loop, name="worker-stdin", daemon=True).start()
        while True:
            msg = self._jobs.get()
            if msg is None:
                break
            if msg["type"] == "load":
                self._load(str(msg.get("backend", "")), dict(msg.get("config") or {}))
            elif msg["type"] == "job":
                self._run_job(msg)
            else:
                print(f"engine worker: unknown message type {msg['type']!r}", file=self._log, flush=True)
        self._close_backends()
        return 0

    # -- work ---------------------------------------------------------------------------------------
    def _load(self, name: str, config: dict[str, Any]) -> None:
        threads = config.pop("threads", None)
        if threads:
            import torch

            if threads == "auto":  # measured here, in the worker, so the GUI never waits on the sample
                from engines.device import threads_for_load

                threads = threads_for_load()
            torch.set_num_threads(int(threads))
        self._close_backends()
        self._internals_config = {"path": str(config.pop("internals_path", "") or DEFAULT_WEIGHTS),
                                  "device": config.get("device", "auto")}
        self._backend_name = name
        try:
            self._backend = create_backend(name, **config)
            self._load_error = ""
        except BackendError as exc:
            self._load_error = str(exc)
        except Exception as exc:
            traceback.print_exc(file=self._log)
            self._load_error = f"engine '{name}' failed to load: {type(exc).__name__}: {exc}"
        if self._backend is None:
            self.send({"type": "load_failed", "message": self._load_error})
        else:
            self.send({"type": "ready", "status": self.status()})

    def _run_job(self, msg: dict[str, Any]) -> None:
        job_id, kind = str(msg.get("id")), str(msg.get("kind"))
        if job_id in self._cancelled:
            self.send({"type": "cancelled", "id": job_id})
            return
        if self._backend is None:
            reason = self._load_error or "no engine is loaded"
            self.send({"type": "error", "id": job_id, "kind": "load", "message": reason})
            return
        if kind not in JOB_KINDS and kind not in self._extra_jobs:
            self.send({"type": "error", "id": job_id, "kind": "bad_request", "message": f"unknown job kind {kind!r}"})
            return
        self._current = job_id
        last = [0.0]

        def progress(done: int, total: int, stage: str = "") -> None:
            now = time.monotonic()
            if done >= total or done == 0 or now - last[0] >= PROGRESS_INTERVAL_S:
                last[0] = now
                msg = {"type": "progress", "id": job_id, "done": int(done), "total": int(total)}
                if stage:
                    msg["stage"] = str(stage)
                self.send(msg)

        def cancel() -> bool:
            return job_id in self._cancelled

        try:
            result = self._dispatch(kind, dict(msg.get("params") or {}), progress, cancel)
        except Exception as exc:
            self._report_failure(job_id, kind, exc)
        else:
            self.send({"type": "result", "id": job_id, "result": {**result, "provenance": self._provenance()}})
        finally:
            self._current = None
            self._cancelled.discard(job_id)
        self.send({"type": "status", "status": self.status()})

    def _provenance(self) -> dict[str, Any]:
        """What a stored draft needs to be traced and reproduced: engine, model, weights hash, device."""
        return provenance(self._backend, self._backend_name)

    def _dispatch(self, kind: str, p: dict[str, Any], progress: Any, cancel: Any) -> dict[str, Any]:
        assert self._backend is not None
        if kind in self._extra_jobs:
            out = self._extra_jobs[kind](self._internals_backend(), p, progress, cancel)
            return out.to_json() if isinstance(out, JobResult) else out  # typed (job_results) or a plain dict
        return run_job(self._backend, backend_request(kind, p), progress, cancel).to_json()  # the wire's edge

    def _internals_backend(self) -> EngineBackend:
        """The loaded engine when it is the built-in one, else the built-in engine loaded once beside it."""
        if hasattr(getattr(self._backend, "pipe", None), "forward_with_attentions"):
            return self._backend  # type: ignore[return-value]
        if self._internals is None:
            self._internals = create_backend("diffusion", **self._internals_config)
        return self._internals

    def _close_backends(self) -> None:
        for backend in (self._backend, self._internals):
            if backend is not None:
                backend.close()
        self._backend = self._internals = None

    def _report_failure(self, job_id: str, kind: str, exc: BaseException) -> None:
        if isinstance(exc, Cancelled):  # any of the family (engines.errors)
            self.send({"type": "cancelled", "id": job_id})
            return
        if is_out_of_memory(exc):
            self._free_memory()
            device = getattr(self._backend, "device", "the device")
            message = (f"the engine ran out of memory on {device} while running '{kind}' ({exc}); "
                       "try fewer steps, the CPU, or a smaller model")
            self.send({"type": "error", "id": job_id, "kind": "oom", "message": message})
            return
        if isinstance(exc, BackendError):
            self.send({"type": "error", "id": job_id, "kind": "backend", "message": str(exc)})
            return
        if isinstance(exc, RequestError):  # the job as sent cannot run: said, not a crash
            self.send({"type": "error", "id": job_id, "kind": "bad_request", "message": str(exc)})
            return
        traceback.print_exc(file=self._log)
        self.send({"type": "error", "id": job_id, "kind": "internal",
                   "message": f"engine error during '{kind}': {type(exc).__name__}: {exc}"})

    @staticmethod
    def _free_memory() -> None:
        import gc

        gc.collect()
        if "torch" in sys.modules:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
