"""Explanations, what-if images and similar cases are jobs of the app's one engine worker, never of the GUI.

Drafts and questions go to the worker through app.ai.EngineClient's signals. Explanations, counterfactuals
and case embeddings need attention, gradients and inpainting of the built-in diffusion engine; the same
worker serves them (the extra job kinds of `JOB_MODULES`), on the configured engine
when it is the built-in one, else on the shipped weights loaded once in that worker. Views call
`ClientRunner.run` from their own thread; it blocks that thread only. A crashed or killed worker fails the
running request with a plain message and is started again on the next job.

`InProcessRunner` runs the same job handlers, through the same wire format and the same typing of results
(`engines.worker.client.typed_result`: a job the input gate stopped is an OutOfScope), on a pipeline in this
process: scripts and tests use it with tiny models.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from engines.backends.results import JobResult
from engines.default_weights import DEFAULT_WEIGHTS
from engines.worker.client import WorkerClient, WorkerFailed, typed_result
from engines.worker.protocol import decode, encode
from engines.worker.requests import JobRequest

# Job kinds beyond the backend's own that the app's worker serves (app.ai.engine_client starts it with them;
# installers/bundle_rules.py reads this tuple to bundle the modules).
JOB_MODULES = ("explain.worker_jobs", "engines.counterfactual.worker_jobs", "engines.similar.worker_jobs")
Progress = Callable[..., None]  # (done, total) or (done, total, stage)


class ModelRunner(Protocol):
    key: str

    def run(self, job: JobRequest | str, params: dict[str, Any] | None = None, progress: Progress | None = None,
            cancel: Callable[[], bool] | None = None) -> JobResult | dict[str, Any]: ...

    def close(self) -> None: ...


def weights_key(path: Path) -> str:
    """Identifies the weights for caches: folder plus the checkpoint's size and time."""
    weights = path / "model.safetensors"
    stat = weights.stat() if weights.exists() else None
    return f"{path}:{stat.st_size}:{int(stat.st_mtime)}" if stat else str(path)


def internals_weights(backend: str, config: dict[str, Any]) -> Path:
    """The weights the model-internal jobs run on: the configured built-in engine's, else the shipped ones
    (engines.worker.server loads them beside another engine)."""
    path = config.get("path") if backend == "diffusion" else None
    return Path(path) if path else DEFAULT_WEIGHTS


def _jobs() -> dict[str, Any]:
    from engines.worker.jobs import load_job_modules

    return load_job_modules(JOB_MODULES)


class ClientRunner:
    """Blocking `run` of explanation/what-if/similar jobs on the app's one worker client."""

    def __init__(self, client: WorkerClient) -> None:
        self.client = client

    @property
    def key(self) -> str:
        return weights_key(internals_weights(self.client.backend, self.client.config))

    @property
    def pid(self) -> int | None:
        return self.client.pid

    def run(self, job: JobRequest | str, params: dict[str, Any] | None = None, progress: Progress | None = None,
            cancel: Callable[[], bool] | None = None) -> JobResult | dict[str, Any]:
        """The job's result (typed, engines.worker.client.typed_result); JobCancelled when `cancel()` stopped it, RuntimeError with a plain message when
        it failed."""
        try:
            return self.client.run(job, params, timeout=None, progress=progress, cancel=cancel)
        except WorkerFailed as exc:
            if exc.kind == "crash":
                raise RuntimeError(f"{exc}; it will be restarted on the next request") from None
            raise RuntimeError(str(exc)) from None

    def close(self) -> None:
        """Nothing of its own to stop: the worker belongs to the app's engine client."""


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

    def run(self, job: JobRequest | str, params: dict[str, Any] | None = None, progress: Progress | None = None,
            cancel: Callable[[], bool] | None = None) -> JobResult | dict[str, Any]:
        kind, params = (job.kind, job.to_params()) if isinstance(job, JobRequest) else (job, params or {})
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

            sent = decode(encode({"type": "job", "params": params}))["params"]  # what the worker would get
            result = handler(_PipelineBackend(self._pipe), sent, report, cancel or (lambda: False))
            result = result.to_json() if isinstance(result, JobResult) else result  # as the worker sends it
            return typed_result(kind, decode(encode({"type": "result", "result": result}))["result"])

    def close(self) -> None:
        self._pipe = None


def as_runner(source: Any) -> ModelRunner:
    """A runner as given, or an InProcessRunner around a pipeline factory (a callable)."""
    if hasattr(source, "run") and hasattr(source, "key"):
        return source
    if callable(source):
        return InProcessRunner(source)
    raise TypeError(f"expected a model runner or a pipeline factory, got {type(source).__name__}")
