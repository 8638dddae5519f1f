"""What-if images as a job of the engine worker process (engines.worker.jobs): the inpainting model
runs in the worker, and the GUI gets the WhatIfResult back over the wire.

    python -m engines.worker --jobs engines.counterfactual.worker_jobs
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engines.counterfactual.whatif import WhatIfRequest, WhatIfResult, run_whatif
from engines.worker.jobs import pipeline_of
from engines.worker.wire import from_wire, to_wire


def whatif_job(backend: Any, params: dict[str, Any], progress: Callable[..., None],
               cancel: Callable[[], bool]) -> dict[str, Any]:
    """params: request (a WhatIfRequest in wire form), with_control. Returns the WhatIfResult."""
    pipe = pipeline_of(backend, "whatif")
    request = from_wire(params.get("request"))
    if not isinstance(request, WhatIfRequest):
        raise ValueError("a what-if job needs a WhatIfRequest")
    result = run_whatif(pipe, request, progress=progress, cancel=cancel,
                        with_control=bool(params.get("with_control", False)))
    return {"kind": "whatif", "result": to_wire(result)}


def whatif_from_result(result: dict[str, Any]) -> WhatIfResult:
    out = from_wire(result.get("result")) if result.get("kind") == "whatif" else None
    if not isinstance(out, WhatIfResult):
        raise ValueError("not a what-if result")
    return out


WORKER_JOBS = {"whatif": whatif_job}
