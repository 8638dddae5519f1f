"""EngineClient: the app's handle on the engine worker process (QProcess), its job queue and its health.

The worker runs one job at a time; the queue lives here, so a crashed worker costs only the job it was
running: that job fails with a plain message and the next job starts a fresh worker. Everything is
driven by Qt signals on the GUI thread; nothing here blocks.
"""

from __future__ import annotations

import itertools
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from engines.worker import WORKER_MODULE
from engines.worker.protocol import ProtocolError, decode, encode

CANCEL_GRACE_MS = 15000  # a job that ignores cancel this long gets its worker stopped


@dataclass
class Job:
    id: str
    kind: str
    params: dict[str, Any]
    label: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    cancelling: bool = False


class EngineClient(QObject):
    """Submit jobs (draft/answer/synthesise/inpaint/explain) and follow them through signals.

    Signals: jobQueued(id, kind, label), jobStarted(id), progress(id, done, total), finished(id, result),
    failed(id, message), cancelled(id), status(dict with state/name/device/model/memory/error).
    """

    jobQueued = Signal(str, str, str)
    jobStarted = Signal(str)
    progress = Signal(str, int, int)
    finished = Signal(str, object)
    failed = Signal(str, str)
    cancelled = Signal(str)
    status = Signal(object)

    def __init__(self, backend: str, config: dict[str, Any] | None = None, parent: QObject | None = None,
                 *, program: str | None = None, arguments: list[str] | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.config = dict(config or {})
        frozen = bool(getattr(sys, "frozen", False))  # a PyInstaller build has no `python -m`
        self._program = program or sys.executable
        default_args = ["engine", "worker"] if frozen else ["-m", WORKER_MODULE]
        self._arguments = arguments if arguments is not None else default_args
        self._ids = itertools.count(1)
        self._queue: deque[Job] = deque()
        self._current: Job | None = None
        self._proc: QProcess | None = None
        self._state = "stopped"
        self._buffer = b""
        self._stderr_tail = b""
        self._stopping = False
        self.last_status: dict[str, Any] = {"state": "stopped", "name": backend}

    # -- public API ---------------------------------------------------------------------------------
    def submit(self, kind: str, params: dict[str, Any], label: str = "", **meta: Any) -> str:
        """Queue a job; returns its id at once. Starts the worker when none is running."""
        job = Job(f"job-{next(self._ids)}", kind, dict(params), label or kind, dict(meta))
        self._queue.append(job)
        self.jobQueued.emit(job.id, kind, job.label)
        self._pump()
        return job.id

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job at once, or ask the running one to stop; False when the id is unknown."""
        for job in list(self._queue):
            if job.id == job_id:
                self._queue.remove(job)
                self.cancelled.emit(job_id)
                return True
        if self._current is not None and self._current.id == job_id and not self._current.cancelling:
            self._current.cancelling = True
            self._send({"type": "cancel", "id": job_id})
            QTimer.singleShot(CANCEL_GRACE_MS, self, lambda jid=job_id: self._cancel_overdue(jid))
            return True
        return False

    def job(self, job_id: str) -> Job | None:
        if self._current is not None and self._current.id == job_id:
            return self._current
        return next((j for j in self._queue if j.id == job_id), None)

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self._queue)

    @property
    def worker_pid(self) -> int | None:
        if self._proc is None or self._proc.state() == QProcess.ProcessState.NotRunning:
            return None
        return int(self._proc.processId()) or None

    def set_backend(self, backend: str, config: dict[str, Any] | None = None) -> None:
        """Switch engines (settings changed): the worker restarts with the new one on the next job."""
        self.backend, self.config = backend, dict(config or {})
        if self._current is not None:
            job, self._current = self._current, None
            self.failed.emit(job.id, "the engine was switched before the job finished")
        self._retire_process()
        self._set_status({"state": "stopped", "name": backend})
        self._pump()

    def request_status(self) -> None:
        """Ask a running worker for fresh memory figures (the status signal answers)."""
        if self._state in ("ready",):
            self._send({"type": "status"})

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop the worker (jobs still queued stay queued and will start a new one)."""
        proc = self._proc
        if proc is None:
            return
        self._stopping = True
        if proc.state() != QProcess.ProcessState.NotRunning:
            proc.write(encode({"type": "shutdown"}))
            proc.closeWriteChannel()
            if not proc.waitForFinished(timeout_ms):
                proc.kill()
                proc.waitForFinished(2000)
        self._forget_process()
        if self._current is not None:
            job, self._current = self._current, None
            self.failed.emit(job.id, "the engine was stopped before the job finished")
        self._stopping = False

    def _retire_process(self) -> None:
        """Let the worker exit in the background (no GUI wait); it is killed if it lingers."""
        proc = self._proc
        if proc is None:
            return
        self._forget_process(delete=False)
        if proc.state() == QProcess.ProcessState.NotRunning:
            proc.deleteLater()
            return
        proc.finished.connect(proc.deleteLater)
        proc.write(encode({"type": "shutdown"}))
        proc.closeWriteChannel()
        QTimer.singleShot(10_000, proc, proc.kill)

    # -- process management ---------------------------------------------------------------------------
    def _start_worker(self) -> None:
        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        proc.setProcessEnvironment(env)
        proc.readyReadStandardOutput.connect(self._on_stdout)
        proc.readyReadStandardError.connect(self._on_stderr)
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_error)
        self._proc, self._buffer, self._stderr_tail = proc, b"", b""
        self._state = "starting"
        self._set_status({"state": "starting", "name": self.backend})
        proc.start(self._program, self._arguments)
        config = {"threads": "auto", **self.config}  # the worker measures the load (engines.device)
        proc.write(encode({"type": "load", "backend": self.backend, "config": config}))

    def _forget_process(self, delete: bool = True) -> None:
        if self._proc is not None:
            for sig, slot in ((self._proc.finished, self._on_finished), (self._proc.errorOccurred, self._on_error),
                              (self._proc.readyReadStandardOutput, self._on_stdout),
                              (self._proc.readyReadStandardError, self._on_stderr)):
                sig.disconnect(slot)
            if delete:
                self._proc.deleteLater()
        self._proc = None
        self._state = "stopped"

    def _pump(self) -> None:
        if self._current is not None or not self._queue:
            return
        if self._proc is None:
            self._start_worker()
            return
        if self._state != "ready":
            return
        job = self._queue.popleft()
        self._current = job
        self._send({"type": "job", "id": job.id, "kind": job.kind, "params": job.params})
        self.jobStarted.emit(job.id)
        self._set_status({**self.last_status, "state": "busy", "job": job.id})

    def _send(self, message: dict[str, Any]) -> None:
        if self._proc is not None and self._proc.state() != QProcess.ProcessState.NotRunning:
            self._proc.write(encode(message))

    def _cancel_overdue(self, job_id: str) -> None:
        if self._current is not None and self._current.id == job_id and self._proc is not None:
            self._proc.kill()  # _on_finished reports it as cancelled, not as a crash

    # -- process events -------------------------------------------------------------------------------
    def _on_stdout(self) -> None:
        if self._proc is None:
            return
        self._buffer += bytes(self._proc.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                self._handle(decode(line))
            except ProtocolError:
                continue

    def _on_stderr(self) -> None:
        if self._proc is not None:
            self._stderr_tail = (self._stderr_tail + bytes(self._proc.readAllStandardError().data()))[-4096:]

    def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        job_id = str(msg.get("id", ""))
        if kind == "ready":
            self._state = "ready"
            self._set_status({**msg["status"], "state": "ready"})
            self._pump()
        elif kind == "load_failed":
            self._load_failed(str(msg.get("message", "the engine could not be loaded")))
        elif kind == "status":
            state = "busy" if self._current is not None else "ready"
            self._set_status({**msg["status"], "state": state})
        elif kind == "progress" and self._current is not None and self._current.id == job_id:
            self.progress.emit(job_id, int(msg["done"]), int(msg["total"]))
        elif kind in ("result", "error", "cancelled") and self._current is not None and self._current.id == job_id:
            self._current = None
            if not self._queue:
                self._set_status({**self.last_status, "state": "ready", "job": None})
            if kind == "result":
                self.finished.emit(job_id, msg["result"])
            elif kind == "error":
                self.failed.emit(job_id, str(msg.get("message", "engine error")))
            else:
                self.cancelled.emit(job_id)
            self._pump()

    def _load_failed(self, message: str) -> None:
        """Every queued job would fail the same way: fail them all now, stop the worker, show why."""
        jobs = list(self._queue)
        self._queue.clear()
        self._set_status({"state": "error", "name": self.backend, "error": message})
        self._retire_process()
        for job in jobs:
            self.failed.emit(job.id, f"engine '{self.backend}' could not be loaded: {message}")

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            message = f"the engine worker could not be started ({self._program}): {self._proc.errorString() if self._proc else ''}"
            self._forget_process()
            jobs = ([self._current] if self._current else []) + list(self._queue)
            self._current = None
            self._queue.clear()
            self._set_status({"state": "error", "name": self.backend, "error": message})
            for job in jobs:
                self.failed.emit(job.id, message)

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        if self._stopping:
            return
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        detail = f"exit code {exit_code}" + (", killed or crashed" if crashed else "")
        last = self._stderr_tail.decode("utf-8", "replace").strip().splitlines()[-1:] if self._stderr_tail else []
        message = f"engine worker stopped unexpectedly ({detail}); it will restart on the next job"
        if last and ("Error" in last[0] or "Killed" in last[0]):
            message += f". Last message: {last[0][:200]}"
        job, self._current = self._current, None
        self._forget_process()
        self._set_status({"state": "stopped", "name": self.backend, "error": message})
        if job is not None:
            if job.cancelling:
                self.cancelled.emit(job.id)
            else:
                self.failed.emit(job.id, message)
        self._pump()

    def _set_status(self, status: dict[str, Any]) -> None:
        self.last_status = status
        self.status.emit(status)
