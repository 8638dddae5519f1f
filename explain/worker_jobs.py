"""Explanations as a job of the engine worker process (engines.worker.jobs), so the model that explains
is the one that runs in the worker, never a second copy in the GUI process.

    python -m engines.worker --jobs explain.worker_jobs
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from engines.backends.results import OutOfScope
from engines.scope.guard import check_job, stopped
from engines.worker.job_results import ExplanationResult
from engines.worker.jobs import pipeline_of
from engines.worker.requests import ExplainStudyRequest
from engines.worker.wire import from_wire
from explain.study import StudyExplanation, explain_study


def explain_study_job(backend: Any, params: dict[str, Any], progress: Callable[..., None],
                      cancel: Callable[[], bool]) -> ExplanationResult | OutOfScope:
    """params: an ExplainStudyRequest (engines.worker.requests). Returns the explanation as flat arrays plus
    its JSON metadata (StudyExplanation.to_arrays)."""
    pipe = pipeline_of(backend, "explain_study")
    req = ExplainStudyRequest.from_params(params)
    images = [np.asarray(a) for a in req.images]
    decision = check_job(backend, images, req.headers, req.override_scope) if images else None
    if decision is not None:
        if stopped(decision):
            return OutOfScope(scope=decision)
        images = [images[i] for i in decision.used]
    exp = explain_study(pipe, images, req.text, draft=from_wire(req.draft), k_drafts=int(req.k_drafts),
                        steps=req.steps, ig_steps=int(req.ig_steps), seed=int(req.seed),
                        progress=progress, cancel=cancel)
    arrays = exp.to_arrays()
    meta = str(arrays.pop("meta"))
    return ExplanationResult(meta=meta, arrays=arrays, engine_key=str(getattr(pipe, "weights_hash", "")),
                             scope=decision)


def explanation_from_result(result: ExplanationResult) -> StudyExplanation:
    """The StudyExplanation a worker sent back (typed by engines.worker.client.typed_result)."""
    if not isinstance(result, ExplanationResult):
        raise ValueError(f"not an explanation result: {getattr(result, 'kind', type(result).__name__)!r}")
    arrays = {k: np.asarray(v) for k, v in result.arrays.items()}
    arrays["meta"] = np.array(result.meta)
    return StudyExplanation.from_arrays(arrays)


WORKER_JOBS = {"explain_study": explain_study_job}
