"""Explanations as a job of the engine worker process (engines.worker.jobs), so the model that explains
is the one that runs in the worker, never a second copy in the GUI process.

    python -m engines.worker --jobs explain.worker_jobs
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from engines.scope.guard import check_job, out_of_scope_result, stopped
from engines.worker.jobs import pipeline_of
from engines.worker.wire import from_wire
from explain.study import StudyExplanation, explain_study


def explain_study_job(backend: Any, params: dict[str, Any], progress: Callable[..., None],
                      cancel: Callable[[], bool]) -> dict[str, Any]:
    """params: images (list of 2-D arrays), text, draft (wire form or None), k_drafts, steps, ig_steps,
    seed. Returns the explanation as flat arrays plus its JSON metadata (StudyExplanation.to_arrays)."""
    pipe = pipeline_of(backend, "explain_study")
    images = [np.asarray(a) for a in (params.get("images") or [])]
    decision = check_job(backend, images, params) if images else None
    if decision is not None:
        if stopped(decision):
            return out_of_scope_result(decision)
        images = [images[i] for i in decision.used]
    exp = explain_study(pipe, images, str(params.get("text") or ""), draft=from_wire(params.get("draft")),
                        k_drafts=int(params.get("k_drafts", 4)), steps=params.get("steps"),
                        ig_steps=int(params.get("ig_steps", 16)), seed=int(params.get("seed", 0)),
                        progress=progress, cancel=cancel)
    arrays = exp.to_arrays()
    meta = str(arrays.pop("meta"))
    return {"kind": "explanation", "meta": meta, "arrays": arrays,
            "engine_key": str(getattr(pipe, "weights_hash", "")),
            "scope": decision.to_dict() if decision is not None else None}


def explanation_from_result(result: dict[str, Any]) -> StudyExplanation:
    """The StudyExplanation a worker sent back."""
    if result.get("kind") != "explanation":
        raise ValueError(f"not an explanation result: {result.get('kind')!r}")
    arrays = {k: np.asarray(v) for k, v in dict(result["arrays"]).items()}
    arrays["meta"] = np.array(result["meta"])
    return StudyExplanation.from_arrays(arrays)


WORKER_JOBS = {"explain_study": explain_study_job}
