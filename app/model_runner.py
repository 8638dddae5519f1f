"""Where explanations and what-if images are computed: the engine worker process, never the GUI process.

Drafts and questions go through app.ai.EngineClient (the configured engine). Explanations and
counterfactuals need attention, gradients and inpainting of the built-in diffusion engine, so they run in
a second worker process that loads it (the configured model folder when the diffusion engine is chosen,
else the shipped weights) and serves the extra jobs of `JOB_MODULES`. Views call `run` from their own
QThread; it blocks that thread only. A crashed or killed worker fails the running request with a plain
message and is started again on the next one.

`InProcessRunner` runs the same job handlers, through the same wire format, on a pipeline in this process:
scripts and tests use it with tiny models.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from app.settings import Settings
from engines.default_weights import DEFAULT_WEIGHTS
from engines.errors import JobCancelled
from engines.worker.protocol import decode, encode

JOB_MODULES = ("explain.worker_jobs", "engines.counterfactual.worker_jobs", "engines.similar.worker_jobs")
Progress = Callable[..., None]  # (done, total) or (done, total, stage)


class ModelRunner(Protocol):
    key: str

    def run(self, kind: str, params: dict[str, Any], progress: Progress | None = None,
            cancel: Callable[[], bool] | None = None) -> dict[str, Any]: ...

    def close(self) -> None: ...


def weights_key(path: Path) -> str:
    """Identifies the weights for caches: folder plus the checkpoint's size and time."""
    weights = path / "model.safetensors"
    stat = weights.stat() if weights.exists() else None
    return f"{path}:{stat.st_size}:{int(stat.st_mtime)}" if stat else str(path)


def _jobs() -> dict[str, Any]:
    from engines.worker.jobs import load_job_modules

    return load_job_modules(JOB_MODULES)


class WorkerRunner:
    """A lazily started engine worker process serving explanation and what-if jobs, one at a time."""

    def __init__(self, path: Path | str | None = None, device: str = "auto", threads: int | None = None) -> None:
        self.path = Path(path) if path else DEFAULT_WEIGHTS
        self.device = device or "auto"
        self.threads: int | str = threads or "auto"  # "auto": the worker measures the load (engines.device)
        self._worker: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerRunner:
        engine = str(settings.get("engine", "diffusion") or "diffusion")
        path = settings.get("engine_model_path", "") if engine.startswith("diffusion") else ""
        return cls(path or None, str(settings.get("engine_device", "auto") or "auto"))

    @property
    def key(self) -> str:
        return weights_key(self.path)

    @property
    def pid(self) -> int | None:
        w = self._worker
        return w.pid if w is not None and w.alive else None

    def _ensure(self) -> Any:
        from engines.worker.client import WorkerFailed, WorkerProcess

        if self._worker is not None and self._worker.alive:
            return self._worker
        self._drop()
        # `python -m engines.worker --jobs ...`; a frozen build's launcher runs `-m MODULE` the same way
        worker = WorkerProcess({"TQDM_DISABLE": "1"}, jobs=JOB_MODULES)
        try:
            worker.start("diffusion", {"path": str(self.path), "device": self.device, "threads": self.threads},
                         timeout=300)
        except WorkerFailed as exc:
            worker.close()
            raise RuntimeError(f"the diffusion engine could not be loaded: {exc}") from None
        except TimeoutError as exc:
            worker.close()
            raise RuntimeError(f"the engine worker did not start: {exc}") from None
        self._worker = worker
        return worker

    def _drop(self) -> None:
        if self._worker is not None:
            self._worker.close(timeout=2)
            self._worker = None

    def run(self, kind: str, params: dict[str, Any], progress: Progress | None = None,
            cancel: Callable[[], bool] | None = None) -> dict[str, Any]:
        from engines.worker.client import WorkerFailed

        with self._lock:
            if cancel is not None and cancel():
                raise JobCancelled("cancelled")
            worker = self._ensure()
            stage = (lambda d, n, s: progress(d, n, s)) if progress is not None else None
            try:
                return worker.wait(worker.submit(kind, params), timeout=None, on_stage=stage, cancel=cancel)
            except WorkerFailed as exc:
                if exc.kind == "cancelled":
                    raise JobCancelled("cancelled") from None
                if exc.kind == "crash":
                    self._drop()
                    raise RuntimeError(f"{exc}; it will be restarted on the next request") from None
                raise RuntimeError(str(exc)) from None

    def close(self) -> None:
        with self._lock:
            self._drop()


class _PipelineBackend:
    """What a job handler needs of a backend, around a pipeline already loaded in this process."""

    name = "diffusion"

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe


class InProcessRunner:
    """The worker's job handlers on a pipeline in this process (tiny models in tests, scripts)."""

    def __init__(self, pipeline_factory: Callable[[], Any], key: str = "") -> None:
        self._factory = pipeline_factory
        self._pipe: Any = None
        self._lock = threading.Lock()
        self.key = key

    def run(self, kind: str, params: dict[str, Any], progress: Progress | None = None,
            cancel: Callable[[], bool] | None = None) -> dict[str, Any]:
        with self._lock:
            if self._pipe is None:
                self._pipe = self._factory()
                self.key = self.key or str(getattr(self._pipe, "weights_hash", ""))
            handler = _jobs().get(kind)
            if handler is None:
                raise ValueError(f"unknown job kind {kind!r}")

            def report(done: int, total: int, stage: str = "") -> None:
                if progress is not None:
                    progress(done, total, stage)

            result = handler(_PipelineBackend(self._pipe), decode(encode({"type": "job", **params})),
                             report, cancel or (lambda: False))
            return decode(encode({"type": "result", **result}))

    def close(self) -> None:
        self._pipe = None


def as_runner(source: Any) -> ModelRunner:
    """A runner as given, or an InProcessRunner around a pipeline factory (a callable)."""
    if hasattr(source, "run") and hasattr(source, "key"):
        return source
    if callable(source):
        return InProcessRunner(source)
    raise TypeError(f"expected a model runner or a pipeline factory, got {type(source).__name__}")
