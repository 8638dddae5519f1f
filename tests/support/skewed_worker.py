"""`python -m tests.support.skewed_worker`: the real engine worker, run as a worker of another version would
answer: every result of the engine's own jobs carries a field this client's result types do not know.

It loads and runs the real engine; only the wire form of its results is changed, after the job ran, so a
test sees what the app does with a result it cannot read (engines.worker.client.typed_result).
"""

from __future__ import annotations

import sys
from typing import Any

import engines.worker.server as server
from engines.worker.__main__ import main

UNKNOWN_FIELD = "calibration_curve"  # a field a newer worker might send


class _Skewed:
    def __init__(self, result: Any) -> None:
        self.result = result

    def to_json(self) -> dict[str, Any]:
        return {**self.result.to_json(), UNKNOWN_FIELD: [0.1, 0.9]}


_run_job = server.run_job


def _skewed_run_job(*args: Any, **kwargs: Any) -> _Skewed:
    return _Skewed(_run_job(*args, **kwargs))


server.run_job = _skewed_run_job  # type: ignore[assignment]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
