"""Extra job kinds a worker can serve beyond the backend interface, contributed by other packages.

The worker lives in `engines` and must not import `explain` (which builds on engines), yet explanations
need the model, so they must run where the model is. A package offers jobs as a module-level
`WORKER_JOBS = {kind: handler}`; the app starts the worker with `--jobs that.module`. A handler is
`handler(backend, params, progress, cancel) -> JobResult | dict` (typed: engines.worker.job_results); `progress(done, total, stage="")`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from engines.backends import JOB_KINDS

JobHandler = Callable[[Any, dict[str, Any], Callable[..., None], Callable[[], bool]], Any]


def load_job_modules(modules: Iterable[str]) -> dict[str, JobHandler]:
    """Import each module and collect its WORKER_JOBS; a missing module, a module without jobs or a kind
    that clashes with the backend's own jobs or another module's is a ValueError naming it."""
    jobs: dict[str, JobHandler] = {}
    owner: dict[str, str] = {}
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"worker job module {name!r} cannot be imported: {exc}") from exc
        offered = getattr(module, "WORKER_JOBS", None)
        if not isinstance(offered, dict) or not offered:
            raise ValueError(f"module {name!r} offers no WORKER_JOBS")
        for kind, handler in offered.items():
            if kind in JOB_KINDS or kind in jobs:
                raise ValueError(f"job kind {kind!r} of {name!r} is already served by "
                                 f"{owner.get(kind, 'the engine backend')}")
            if not callable(handler):
                raise ValueError(f"job {kind!r} of {name!r} is not callable")
            jobs[kind], owner[kind] = handler, name
    return jobs


def pipeline_of(backend: Any, job: str) -> Any:
    """The MedimPipeline behind the built-in engine; other engines cannot serve model-internal jobs."""
    from engines.backends import BackendError

    pipe = getattr(backend, "pipe", None)
    if pipe is None or not hasattr(pipe, "forward_with_attentions"):
        raise BackendError(f"'{job}' needs the built-in diffusion engine (attention, gradients and "
                           f"inpainting); the loaded engine '{getattr(backend, 'name', '?')}' has none")
    return pipe
