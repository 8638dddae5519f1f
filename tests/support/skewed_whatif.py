"""`--jobs tests.support.skewed_whatif`: the real what-if job, answering as a worker of another version
would: its result carries a field this client's result types (engines.worker.job_results) do not know.

The real handler runs on the real engine; only the wire form of its result is changed after it ran, so a
test sees what the what-if view does with a result it cannot read.
"""

from __future__ import annotations

from typing import Any

from engines.counterfactual.worker_jobs import whatif_job

UNKNOWN_FIELD = "variant_scores"  # a field a newer worker might send


def skewed_whatif(*args: Any) -> dict[str, Any]:
    return {**whatif_job(*args).to_json(), UNKNOWN_FIELD: [0.1, 0.9]}


WORKER_JOBS = {"whatif": skewed_whatif}
