"""What-if images as a job of the engine worker process (engines.worker.jobs): the inpainting model
runs in the worker, and the GUI gets the WhatIfResult back over the wire.

    python -m engines.worker --jobs engines.counterfactual.worker_jobs
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engines.backends.results import OutOfScope
from engines.calibration import Calibration
from engines.counterfactual.edits import diff_reports
from engines.counterfactual.honesty import edit_warnings
from engines.counterfactual.whatif import WhatIfRequest, WhatIfResult, run_whatif
from engines.reading import read_images
from engines.scope.guard import check_job, stopped
from engines.worker.job_results import WhatIfOutput, WhatIfWarning
from engines.worker.jobs import pipeline_of
from engines.worker.requests import WhatIfJob
from engines.worker.wire import from_wire

WARNING_KIND = WhatIfWarning.kind  # the edit contradicts the reading: nothing ran; rerun with confirmed=True


def whatif_job(backend: Any, params: dict[str, Any], progress: Callable[..., None],
               cancel: Callable[[], bool]) -> WhatIfOutput | WhatIfWarning | OutOfScope:
    """params: a WhatIfJob (engines.worker.requests): request (a WhatIfRequest in wire form), with_control,
    headers/override_scope (engines.scope.guard), confirmed (the user was told what the reading says). Returns the WhatIfResult; the scope
    decision alone when the image is out of scope; or, unconfirmed, the warnings when the edit removes a finding
    the reading does not see or adds one it already sees (kind WARNING_KIND)."""
    pipe = pipeline_of(backend, "whatif")
    job = WhatIfJob.from_params(params)
    request = from_wire(job.request)
    if not isinstance(request, WhatIfRequest):
        raise ValueError("a what-if job needs a WhatIfRequest")
    decision = check_job(backend, [request.image], job.headers, job.override_scope)
    if stopped(decision):
        return OutOfScope(scope=decision)
    if not job.confirmed:  # an edit the reading contradicts is said before anything runs
        reading = read_images(pipe, [request.image], Calibration.load(getattr(pipe, "path", None)))
        warnings = edit_warnings(reading, diff_reports(request.current_report, request.edited_report))
        if warnings:
            return WhatIfWarning(warnings=list(warnings), reading=reading, scope=decision)
    result = run_whatif(pipe, request, progress=progress, cancel=cancel,
                        with_control=bool(job.with_control))
    return WhatIfOutput(result=result, scope=decision)


def whatif_from_result(result: WhatIfOutput) -> WhatIfResult:
    """The WhatIfResult a worker sent back (typed by engines.worker.client.typed_result)."""
    if not isinstance(result, WhatIfOutput):
        raise ValueError(f"not a what-if result: {getattr(result, 'kind', type(result).__name__)!r}")
    return result.result


WORKER_JOBS = {"whatif": whatif_job}
