"""Running PACS work off the GUI thread with the GUI's background helper, relaying progress and result.

The task gets `(emit_progress, cancel)`; PacsError messages reach the GUI as they are (they are written for
users), anything else is reported as an unexpected error rather than crashing the window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from app.pacs.cancel import CancelToken
from app.pacs.errors import PacsError
from viewer.widgets.background import BackgroundRunner, Job

log = logging.getLogger(__name__)

Task = Callable[[Callable[[object], None], CancelToken], Any]


def start_worker(
    runner: BackgroundRunner,
    task: Task,
    *,
    on_progress: Callable[[object], None] | None = None,
    on_done: Callable[[object], None] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> Job:
    """Start `task` on `runner` (a child of the widget that shows the result): closing that widget never
    stops or crashes the task, and its result is then dropped. `job.cancel()` cancels the task's token."""

    def failed(exc: BaseException) -> None:
        if isinstance(exc, PacsError):
            message = str(exc)
        else:
            log.error("PACS task failed", exc_info=exc)
            message = f"unexpected error: {type(exc).__name__}: {exc}"
        if on_error is not None:
            on_error(message)

    return runner.start(lambda job: task(job.progress, CancelToken(job.cancel_event)), on_done=on_done,
                        on_error=failed, on_progress=on_progress)
