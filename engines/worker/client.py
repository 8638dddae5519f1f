"""The one client of the engine worker process: its job queue, its health and every job's events; Qt-free.

The worker runs one job at a time; the queue lives here, so a crashed worker costs only the job it was
running: that job fails with a plain message and the next job starts a fresh worker. Nothing blocks the
caller but `start`, `wait`/`run` and `close`: the process is read on background threads and every event
(queued, started, progress, finished, failed, cancelled, status) goes to the `on_event` callback, from
whichever thread saw it. The app wraps this for Qt signals (app.ai.engine_client); scripts, benchmarks,
the self-check and the explanation/what-if views block on `run`.

Results are typed here, once, at the wire's edge (`typed_result`): the backend's jobs and any job the input
gate stopped arrive as engines.backends.results types (TextOutput, ImageOutput, RegionMaps, Refused,
OutOfScope), the extra kinds' as engines.worker.job_results types (ExplanationResult, WhatIfOutput,
WhatIfWarning, SimilarCases); a kind without a result type keeps its dict. A result that does not
read as its type fails the job (`bad_result`) with a message naming what is wrong, so a caller never holds
half a result.
"""

from __future__ import annotations

import itertools
import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from engines.backends.results import RESULT_TYPES, JobResult, ResultError, result_from_json
from engines.errors import JobCancelled
from engines.worker import WORKER_MODULE
from engines.worker.job_results import EXTRA_JOB_RESULTS, EXTRA_RESULT_TYPES
from engines.worker.protocol import ProtocolError, decode, encode
from engines.worker.requests import BACKEND_REQUESTS, JobRequest

CANCEL_GRACE_S = 15.0  # a job that ignores cancel this long gets its worker stopped
RETIRE_GRACE_S = 10.0  # a worker told to shut down is killed if it lingers this long


class WorkerFailed(RuntimeError):
    """The job failed; `kind` says why: load, crash, start, backend, oom, bad_request, bad_result, internal,
    stopped."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class JobEvent:
    """One thing that happened to a job (or, for "status", to the worker). `type` is one of
    queued, started, progress, finished, failed, cancelled, status."""

    type: str
    job_id: str = ""
    kind: str = ""  # the job's kind (queued)
    label: str = ""  # queued
    done: int = 0  # progress
    total: int = 0
    stage: str = ""
    result: JobResult | dict[str, Any] | None = None  # finished: typed (`typed_result`)
    message: str = ""  # failed
    failure: str = ""  # failed: the WorkerFailed kind
    status: dict[str, Any] | None = None  # status


EventFn = Callable[[JobEvent], None]


def typed_result(kind: str, result: Any) -> JobResult | dict[str, Any]:
    """A finished job's wire result as its caller reads it: a backend job's result (and any result tagged
    with a result type, such as an extra job's OutOfScope) rebuilt by `result_from_json`; an explanation,
    what-if or similar-cases result by its type (engines.worker.job_results); another extra kind's own dict
    as it came. ResultError when it is not what its tag or its job kind says."""
    if not isinstance(result, dict):
        raise ResultError(f"the '{kind}' job's result is {type(result).__name__}, not a mapping")
    tag = result.get("kind")
    if kind in EXTRA_JOB_RESULTS and tag not in RESULT_TYPES:
        if tag not in EXTRA_JOB_RESULTS[kind]:
            raise ResultError(f"the '{kind}' job sent a result of kind {tag!r}; expected "
                              f"{' or '.join(map(repr, EXTRA_JOB_RESULTS[kind]))}")
        return EXTRA_RESULT_TYPES[str(tag)].from_json(result)
    if kind not in BACKEND_REQUESTS and tag not in RESULT_TYPES:
        return result
    try:
        return result_from_json(result)
    except ResultError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a nested field of the wrong shape
        raise ResultError(f"a '{tag}' result has a malformed field: {type(exc).__name__}: {exc}") from None


@dataclass
class Job:
    id: str
    kind: str
    params: dict[str, Any]
    label: str = ""
    broadcast: bool = True  # its events also go to the client's on_event (the app's job list)
    collect: bool = True  # its events are kept for `wait` (False: on_event is the only listener)
    cancelling: bool = False
    events: queue.Queue[JobEvent] = field(default_factory=queue.Queue)


def worker_command(jobs: list[str] | tuple[str, ...] = ()) -> list[str]:
    """How to start a worker: this interpreter running `-m engines.worker` plus the extra job modules (in
    the frozen bundle `sys.executable` is its launcher, which runs `-m MODULE` the same way)."""
    return [sys.executable, "-m", WORKER_MODULE, *[a for m in jobs for a in ("--jobs", m)]]


class _Process:
    """One started worker: its Popen, whether it said ready, and the tail of what it wrote to stderr."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.ready = False
        self.stderr_tail = b""
        self.threads: list[threading.Thread] = []


class WorkerClient:
    """Submit jobs (draft/answer/synthesise/inpaint and the extra kinds of `jobs` modules) to a worker."""

    def __init__(self, backend: str = "", config: dict[str, Any] | None = None, *,
                 jobs: list[str] | tuple[str, ...] = (), command: list[str] | None = None,
                 env: dict[str, str] | None = None, on_event: EventFn | None = None,
                 cancel_grace_s: float = CANCEL_GRACE_S) -> None:
        self.backend = backend
        self.config = dict(config or {})
        self.jobs = tuple(jobs)
        self.command = list(command) if command else worker_command(self.jobs)
        self.on_event = on_event
        self.cancel_grace_s = cancel_grace_s
        self._env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._queue: deque[Job] = deque()
        self._current: Job | None = None
        self._proc: _Process | None = None
        self._ready = threading.Condition(self._lock)
        self._load_error = ""
        self._waitable: dict[str, Job] = {}  # jobs whose events `wait` will collect
        self.last_status: dict[str, Any] = {"state": "stopped", "name": backend}

    # -- public API ---------------------------------------------------------------------------------
    def submit(self, job: JobRequest | str, params: dict[str, Any] | None = None, label: str = "", *,
               broadcast: bool = True, collect: bool = True) -> str:
        """Queue a job (a typed request, or a kind and its wire params); returns its id at once. Starts the
        worker when none is running. `broadcast`: its events go to `on_event`; `collect`: they are kept
        for `wait` (which every such job needs)."""
        kind, params = (job.kind, job.to_params()) if isinstance(job, JobRequest) else (job, params or {})
        with self._lock:
            job = Job(f"job-{next(self._ids)}", kind, dict(params), label or kind, broadcast, collect)
            if collect:
                self._waitable[job.id] = job
            self._queue.append(job)
            out = [(job, JobEvent("queued", job.id, kind=kind, label=job.label))]
            out += self._pump()
        self._deliver(out)
        return job.id

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job at once, or ask the running one to stop; False when the id is unknown."""
        out: list[tuple[Job | None, JobEvent]] = []
        with self._lock:
            queued = next((j for j in self._queue if j.id == job_id), None)
            if queued is not None:
                self._queue.remove(queued)
                out.append((queued, JobEvent("cancelled", job_id)))
            elif self._current is not None and self._current.id == job_id and not self._current.cancelling:
                self._current.cancelling = True
                self._send({"type": "cancel", "id": job_id})
                proc = self._proc
                timer = threading.Timer(self.cancel_grace_s, self._cancel_overdue, (job_id, proc))
                timer.daemon = True
                timer.start()
                return True
            else:
                return False
        self._deliver(out)
        return True

    def wait(self, job_id: str, timeout: float | None = 120, *,
             on_progress: Callable[[int, int, str], None] | None = None,
             cancel: Callable[[], bool] | None = None, poll_s: float = 0.1) -> JobResult | dict[str, Any]:
        """Block until the job ends; return its result (typed: `typed_result`), raise JobCancelled when it was
        cancelled or WorkerFailed(kind, message) when it failed. `cancel` is polled every `poll_s` and, once
        True, asks the worker to stop the job. `timeout=None` waits as long as the job runs."""
        with self._lock:
            job = self._waitable.get(job_id)
        if job is None:
            raise KeyError(f"unknown or already collected job {job_id!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        asked = False
        while True:
            if cancel is not None and not asked and cancel():
                asked = True
                self.cancel(job_id)
            left = poll_s if deadline is None else min(poll_s, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"engine worker did not answer within {timeout:.0f} s")
            try:
                event = job.events.get(timeout=left)
            except queue.Empty:
                continue
            if event.type == "progress" and on_progress is not None:
                on_progress(event.done, event.total, event.stage)
            elif event.type in ("finished", "failed", "cancelled"):
                with self._lock:
                    self._waitable.pop(job_id, None)
                if event.type == "finished":
                    return event.result if event.result is not None else {}
                if event.type == "cancelled":
                    raise JobCancelled("cancelled")
                raise WorkerFailed(event.failure or "error", event.message)

    def run(self, job: JobRequest | str, params: dict[str, Any] | None = None, timeout: float | None = 120, *,
            progress: Callable[[int, int, str], None] | None = None,
            cancel: Callable[[], bool] | None = None, broadcast: bool = False) -> JobResult | dict[str, Any]:
        """Submit and wait: the blocking call of scripts and of views that wait on their own thread."""
        return self.wait(self.submit(job, params, broadcast=broadcast), timeout, on_progress=progress,
                         cancel=cancel)

    def start(self, timeout: float = 120) -> dict[str, Any]:
        """Start the worker now (rather than on the first job), wait until the engine is loaded and
        return its status; a load problem raises WorkerFailed("load")."""
        deadline = time.monotonic() + timeout
        out: list[tuple[Job | None, JobEvent]] = []
        with self._lock:
            if self._proc is None:
                self._load_error = ""
                out = self._start_process()
                if self._proc is None:
                    raise WorkerFailed("start", self._load_error)
        self._deliver(out)
        with self._lock:
            while self._proc is not None and not self._proc.ready:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"engine worker did not answer within {timeout:.0f} s")
                self._ready.wait(left)
            if self._proc is None:
                raise WorkerFailed("load", self._load_error or "the engine worker stopped while loading")
            return dict(self.last_status)

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self._queue)

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.popen.pid if proc is not None and proc.popen.poll() is None else None

    @property
    def alive(self) -> bool:
        return self.pid is not None

    def set_backend(self, backend: str, config: dict[str, Any] | None = None) -> None:
        """Switch engines (settings changed): the worker restarts with the new one on the next job."""
        out: list[tuple[Job | None, JobEvent]] = []
        with self._lock:
            self.backend, self.config = backend, dict(config or {})
            if self._current is not None:
                job, self._current = self._current, None
                out.append(self._failure(job, "stopped", "the engine was switched before the job finished"))
            self._retire()
            out.append(self._status({"state": "stopped", "name": backend}))
            out += self._pump()
        self._deliver(out)

    def request_status(self) -> None:
        """Ask a running worker for fresh memory figures (a status event answers)."""
        with self._lock:
            if self._proc is not None and self._proc.ready:
                self._send({"type": "status"})

    def close(self, timeout: float = 10) -> None:
        """Stop the worker and wait for it (jobs still queued stay queued and start a new one when
        another job is submitted); the running job fails."""
        with self._lock:
            proc, self._proc = self._proc, None
            job, self._current = self._current, None
            self._ready.notify_all()
        if proc is not None:
            try:
                proc.popen.stdin.write(encode({"type": "shutdown"}))  # type: ignore[union-attr]
                proc.popen.stdin.close()  # type: ignore[union-attr]
            except (OSError, ValueError):
                pass
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
            for t in proc.threads:
                t.join(2)
        out: list[tuple[Job | None, JobEvent]] = []
        with self._lock:
            if job is not None:
                out.append(self._failure(job, "stopped", "the engine was stopped before the job finished"))
            out.append(self._status({"state": "stopped", "name": self.backend}))
        self._deliver(out)

    def __enter__(self) -> WorkerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals (called with the lock held; they return the events to deliver after releasing it) --
    def _start_process(self) -> list[tuple[Job | None, JobEvent]]:
        try:
            popen = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self._env)
        except OSError as exc:
            message = f"the engine worker could not be started ({self.command[0]}): {exc}"
            jobs = ([self._current] if self._current else []) + list(self._queue)
            self._current = None
            self._queue.clear()
            self._load_error = message
            return [self._status({"state": "error", "name": self.backend, "error": message}),
                    *[self._failure(j, "start", message) for j in jobs]]
        proc = self._proc = _Process(popen)
        for target, name in ((self._read_stdout, "worker-stdout"), (self._read_stderr, "worker-stderr")):
            t = threading.Thread(target=target, args=(proc,), name=name, daemon=True)
            proc.threads.append(t)
            t.start()
        config = {"threads": "auto", **self.config}  # "auto": the worker measures the load (engines.device)
        self._send({"type": "load", "backend": self.backend, "config": config})
        return [self._status({"state": "starting", "name": self.backend})]

    def _pump(self) -> list[tuple[Job | None, JobEvent]]:
        if self._current is not None or not self._queue:
            return []
        if self._proc is None:
            return self._start_process() + self._pump()
        if not self._proc.ready:
            return []
        job = self._current = self._queue.popleft()
        self._send({"type": "job", "id": job.id, "kind": job.kind, "params": job.params})
        return [(job, JobEvent("started", job.id)),
                self._status({**self.last_status, "state": "busy", "job": job.id})]

    def _send(self, message: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.popen.poll() is not None:
            return
        try:
            proc.popen.stdin.write(encode(message))  # type: ignore[union-attr]
            proc.popen.stdin.flush()  # type: ignore[union-attr]
        except (OSError, ValueError):
            pass  # the worker died: its stdout reader reports that

    def _retire(self) -> None:
        """Let the worker exit in the background (no caller waits); it is killed if it lingers."""
        proc, self._proc = self._proc, None
        self._ready.notify_all()
        if proc is None:
            return
        try:
            proc.popen.stdin.write(encode({"type": "shutdown"}))  # type: ignore[union-attr]
            proc.popen.stdin.close()  # type: ignore[union-attr]
        except (OSError, ValueError):
            pass
        timer = threading.Timer(RETIRE_GRACE_S, lambda: proc.popen.poll() is None and proc.popen.kill())
        timer.daemon = True
        timer.start()

    def _status(self, status: dict[str, Any]) -> tuple[Job | None, JobEvent]:
        self.last_status = status
        return None, JobEvent("status", status=dict(status))

    @staticmethod
    def _failure(job: Job, failure: str, message: str) -> tuple[Job | None, JobEvent]:
        return job, JobEvent("failed", job.id, message=message, failure=failure)

    def _cancel_overdue(self, job_id: str, proc: _Process | None) -> None:
        with self._lock:
            if (self._current is not None and self._current.id == job_id and proc is not None
                    and proc is self._proc):
                proc.popen.kill()  # the reader reports the exit as the job's cancellation, not a crash

    def _deliver(self, events: list[tuple[Job | None, JobEvent]]) -> None:
        on_event = self.on_event
        for job, event in events:
            if job is not None and job.collect:
                job.events.put(event)
            if on_event is not None and (job is None or job.broadcast):
                on_event(event)

    # -- the worker's output (reader threads) ---------------------------------------------------------
    def _read_stdout(self, proc: _Process) -> None:
        stream: IO[bytes] = proc.popen.stdout  # type: ignore[assignment]
        for line in iter(stream.readline, b""):
            if not line.strip():
                continue
            try:
                msg = decode(line)
            except ProtocolError:
                continue
            with self._lock:
                out = self._handle(proc, msg) if proc is self._proc else []
            self._deliver(out)
        code = proc.popen.wait()
        with self._lock:
            out = self._exited(proc, code) if proc is self._proc else []
        self._deliver(out)

    def _read_stderr(self, proc: _Process) -> None:
        stream: IO[bytes] = proc.popen.stderr  # type: ignore[assignment]
        for chunk in iter(lambda: stream.read1(4096), b""):  # type: ignore[attr-defined]
            proc.stderr_tail = (proc.stderr_tail + chunk)[-4096:]

    def _handle(self, proc: _Process, msg: dict[str, Any]) -> list[tuple[Job | None, JobEvent]]:
        kind = msg["type"]
        job_id = str(msg.get("id", ""))
        current = self._current
        if kind == "ready":
            proc.ready = True
            self._ready.notify_all()
            return [self._status({**msg["status"], "state": "ready"}), *self._pump()]
        if kind == "load_failed":
            message = str(msg.get("message", "the engine could not be loaded"))
            self._load_error = message
            jobs = list(self._queue)
            self._queue.clear()
            self._retire()
            return [self._status({"state": "error", "name": self.backend, "error": message}),
                    *[self._failure(j, "load", f"engine '{self.backend}' could not be loaded: {message}")
                      for j in jobs]]
        if kind == "status":
            return [self._status({**msg["status"], "state": "busy" if current is not None else "ready"})]
        if current is None or current.id != job_id:
            return []
        if kind == "progress":
            return [(current, JobEvent("progress", job_id, done=int(msg["done"]), total=int(msg["total"]),
                                       stage=str(msg.get("stage", ""))))]
        if kind not in ("result", "error", "cancelled"):
            return []
        self._current = None
        out: list[tuple[Job | None, JobEvent]] = []
        if not self._queue:
            out.append(self._status({**self.last_status, "state": "ready", "job": None}))
        if kind == "result":
            try:
                result = typed_result(current.kind, msg.get("result"))
            except ResultError as exc:
                out.append(self._failure(current, "bad_result", f"the engine's answer to '{current.kind}' could "
                                         f"not be read ({exc}); is the engine worker from another version?"))
            else:
                out.append((current, JobEvent("finished", job_id, result=result)))
        elif kind == "error":
            out.append(self._failure(current, str(msg.get("kind", "error")), str(msg.get("message", "engine error"))))
        else:
            out.append((current, JobEvent("cancelled", job_id)))
        return out + self._pump()

    def _exited(self, proc: _Process, code: int) -> list[tuple[Job | None, JobEvent]]:
        """The current worker ended without being asked to: fail (or cancel) its job, restart on the next.
        One that ends before it is ready would end again: every queued job fails with its message."""
        detail = f"exit code {code}" + (", killed or crashed" if code < 0 else "")
        for t in proc.threads[1:]:
            t.join(1)  # the stderr tail says why
        last = proc.stderr_tail.decode("utf-8", "replace").strip().splitlines()[-1:]
        message = f"engine worker stopped unexpectedly ({detail}); it will restart on the next job"
        if last and ("Error" in last[0] or "Killed" in last[0]):
            message += f". Last message: {last[0][:200]}"
        job, self._current = self._current, None
        self._proc = None
        self._ready.notify_all()
        if not proc.ready:
            self._load_error = message
            jobs = list(self._queue)
            self._queue.clear()
            return [self._status({"state": "error", "name": self.backend, "error": message}),
                    *[self._failure(j, "crash", message) for j in jobs]]
        out = [self._status({"state": "stopped", "name": self.backend, "error": message})]
        if job is not None:
            out.append((job, JobEvent("cancelled", job.id)) if job.cancelling
                       else self._failure(job, "crash", message))
        return out + self._pump()
