"""A blocking, Qt-free client for the worker process: scripts, benchmarks and tests drive it directly.

The app's EngineClient (app.ai) speaks the same protocol through QProcess so the GUI never blocks.
"""

from __future__ import annotations

import itertools
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from engines.worker.protocol import ProtocolError, decode, encode


class WorkerFailed(RuntimeError):
    """The job failed (error, cancel or the worker died); `kind` says which."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def worker_command(jobs: list[str] | tuple[str, ...] = ()) -> list[str]:
    """How to start a worker: this interpreter running `-m engines.worker` (plus extra job modules)."""
    return [sys.executable, "-m", "engines.worker", *[a for m in jobs for a in ("--jobs", m)]]


class WorkerProcess:
    def __init__(self, env: dict[str, str] | None = None, *, jobs: list[str] | tuple[str, ...] = ()) -> None:
        self._env = {**os.environ, **(env or {})}
        self._command = worker_command(jobs)
        self._proc: subprocess.Popen[bytes] | None = None
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._ids = itertools.count(1)
        self.status: dict[str, Any] = {}

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, backend: str, config: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        """Start the process, load `backend` and return its status; a load problem raises WorkerFailed."""
        self._proc = subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, env=self._env)
        threading.Thread(target=self._pump, daemon=True).start()
        self._send({"type": "load", "backend": backend, "config": config})
        msg = self._next(lambda m: m["type"] in {"ready", "load_failed"}, timeout)
        if msg["type"] == "load_failed":
            raise WorkerFailed("load", msg["message"])
        self.status = msg["status"]
        return self.status

    def submit(self, kind: str, params: dict[str, Any]) -> str:
        job_id = f"job-{next(self._ids)}"
        self._send({"type": "job", "id": job_id, "kind": kind, "params": params})
        return job_id

    def cancel(self, job_id: str) -> None:
        self._send({"type": "cancel", "id": job_id})

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self, job_id: str, timeout: float | None = 120,
             on_progress: Callable[[int, int], None] | None = None, *,
             on_stage: Callable[[int, int, str], None] | None = None,
             cancel: Callable[[], bool] | None = None, poll_s: float = 0.1) -> dict[str, Any]:
        """Block until the job ends; return its result dict or raise WorkerFailed(kind, message).

        `on_stage` also gets the stage text a job reports; `cancel` is polled every `poll_s` and, once
        True, asks the worker to stop the job (which then raises WorkerFailed("cancelled")).
        `timeout=None` waits as long as the job runs (long jobs that the caller can cancel)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        asked = False
        while True:
            if cancel is not None and not asked and cancel():
                self.cancel(job_id)
                asked = True
            left = poll_s if deadline is None else min(poll_s, max(deadline - time.monotonic(), 0.001))
            try:
                msg = self._next(lambda m: m.get("id") == job_id or m["type"] in {"exit", "status"}, left)
            except TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"engine worker did not answer within {timeout:.0f} s") from None
                continue
            kind = msg["type"]
            if kind == "status":
                self.status = msg["status"]
            elif kind == "progress":
                if on_progress is not None:
                    on_progress(int(msg["done"]), int(msg["total"]))
                if on_stage is not None:
                    on_stage(int(msg["done"]), int(msg["total"]), str(msg.get("stage", "")))
            elif kind == "result":
                return msg["result"]
            elif kind == "cancelled":
                raise WorkerFailed("cancelled", "cancelled")
            elif kind == "error":
                raise WorkerFailed(msg.get("kind", "error"), msg["message"])
            elif kind == "exit":
                raise WorkerFailed("crash", f"engine worker stopped unexpectedly (exit code {msg['code']})")

    def run(self, kind: str, params: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        return self.wait(self.submit(kind, params), timeout)

    def close(self, timeout: float = 10) -> None:
        if self._proc is None:
            return
        try:
            self._send({"type": "shutdown"})
            self._proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, msg: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None, "worker not started"
        self._proc.stdin.write(encode(msg))
        self._proc.stdin.flush()

    def _pump(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            try:
                self._events.put(decode(line))
            except ProtocolError:
                continue
        self._events.put({"type": "exit", "code": proc.wait()})

    def _next(self, match: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self._events.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise TimeoutError(f"engine worker did not answer within {timeout:.0f} s") from None
            if msg["type"] == "exit" or match(msg):
                if msg["type"] == "exit":
                    self._events.put(msg)  # every later wait sees the exit too
                return msg
