"""EngineClient: the app's Qt face of the one engine worker client (engines.worker.client.WorkerClient).

The worker process, its job queue and its health live in WorkerClient (Qt-free, the same code that scripts,
the self-check and the explanation/what-if/similar-case views use); this only turns its events into Qt
signals on the GUI thread (events seen by the reader threads arrive through a queued connection), so the
drafts, questions, explanations and what-if images of the app all run in one worker holding one copy of
the weights. Nothing here blocks but `shutdown`.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from app.model_runner import JOB_MODULES
from engines.worker.client import JobEvent, WorkerClient
from engines.worker.requests import JobRequest


class EngineClient(QObject):
    """Submit jobs (draft/answer/synthesise/inpaint/explain) and follow them through signals.

    Signals: jobQueued(id, kind, label), jobStarted(id), progress(id, done, total), finished(id, result: typed
    by the core, engines.worker.client.typed_result), failed(id, message: also a result that could not be read), cancelled(id), status(dict with state/name/device/model/memory/error).
    `core` is the WorkerClient itself, for views that wait on their own thread (app.model_runner).
    """

    jobQueued = Signal(str, str, str)
    jobStarted = Signal(str)
    progress = Signal(str, int, int)
    finished = Signal(str, object)
    failed = Signal(str, str)
    cancelled = Signal(str)
    status = Signal(object)
    _event = Signal(object)  # a JobEvent, from whichever thread saw it

    def __init__(self, backend: str, config: dict[str, Any] | None = None, parent: QObject | None = None,
                 *, command: list[str] | None = None, jobs: tuple[str, ...] = JOB_MODULES) -> None:
        super().__init__(parent)
        self._event.connect(self._relay)  # auto connection: direct on the GUI thread, queued from others
        self.core = WorkerClient(backend, config, jobs=jobs, command=command, on_event=self._event.emit)

    @property
    def backend(self) -> str:
        return self.core.backend

    @property
    def config(self) -> dict[str, Any]:
        return self.core.config

    @property
    def last_status(self) -> dict[str, Any]:
        return self.core.last_status

    @property
    def busy(self) -> bool:
        return self.core.busy

    @property
    def worker_pid(self) -> int | None:
        return self.core.pid

    def submit(self, job: JobRequest | str, params: dict[str, Any] | None = None, label: str = "") -> str:
        """Queue a job (a typed request, or a kind and its wire params); returns its id at once (its events
        arrive as signals). Starts the worker if needed."""
        return self.core.submit(job, params, label, collect=False)

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job at once, or ask the running one to stop; False when the id is unknown."""
        return self.core.cancel(job_id)

    def set_backend(self, backend: str, config: dict[str, Any] | None = None) -> None:
        """Switch engines (settings changed): the worker restarts with the new one on the next job."""
        self.core.set_backend(backend, config)

    def request_status(self) -> None:
        """Ask a running worker for fresh memory figures (the status signal answers)."""
        self.core.request_status()

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop the worker and wait for it (jobs still queued stay queued and will start a new one)."""
        self.core.close(timeout_ms / 1000)

    def _relay(self, event: JobEvent) -> None:
        if event.type == "queued":
            self.jobQueued.emit(event.job_id, event.kind, event.label)
        elif event.type == "started":
            self.jobStarted.emit(event.job_id)
        elif event.type == "progress":
            self.progress.emit(event.job_id, event.done, event.total)
        elif event.type == "finished":
            self.finished.emit(event.job_id, event.result)
        elif event.type == "failed":
            self.failed.emit(event.job_id, event.message)
        elif event.type == "cancelled":
            self.cancelled.emit(event.job_id)
        elif event.type == "status":
            self.status.emit(event.status)
