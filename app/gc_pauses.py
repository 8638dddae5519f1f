"""Keeps the cyclic garbage collector's full scans of the start-up heap out of the reading room's actions.

Why: CPython's oldest-generation collection walks every container object the process tracks. After start-up
the GUI process holds a large heap that lives until it exits (Qt wrappers, pydicom's data dictionaries,
SQLAlchemy's mappers and compiled queries, numpy, the report editor built at idle time); each such
collection scans all of it and lands in whatever the user is doing at that moment (measured with the
collector hook of benchmarks/ui_stalls.py: see benchmarks/results/ui_stalls_study_open.md). Once start-up
is done (the window shown, its idle-time preparations and the study-open warm-up thread finished), a
collection of the young generations clears start-up's recent garbage and `gc.freeze()` moves everything
still alive into the permanent generation, which no later collection scans: the same remedy large Python
services apply after their start-up. No full collection first: it would itself be the pause (93 ms at load
1.8 on the lock screen, for 20 unreachable objects among 362,000). Objects created afterwards are collected as before. A frozen object is still freed when its last
reference goes; only one that ends up in a reference cycle later (e.g. a start-up widget closed and dropped
while still part of a cycle) is never collected: a leak bounded by the start-up heap, once per process.

Applied by the app's start-up path (`app.commands.gui`), never on import: a test process that builds many
windows must not pin each test's objects.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer

log = logging.getLogger(__name__)

POLL_MS = 250  # how often start-up's end is looked for
GIVE_UP_S = 60.0  # start-up work still running after this long (a slow disk): frozen anyway


def freeze_start_up_heap() -> None:
    """Collect the young generations' garbage, then exempt every object still alive from later collections.
    (`gc.get_freeze_count()` says how many are frozen; it walks them all: ~60 ms, so not here.)"""
    started = time.perf_counter()
    gc.collect(1)
    gc.freeze()
    log.info("garbage collector: start-up heap frozen (young collection and freeze: %.1f ms)",
             (time.perf_counter() - started) * 1000.0)


def freeze_when_started(owner: QObject, started: Callable[[], bool], on_frozen: Callable[[], None] | None = None,
                        *, give_up_s: float = GIVE_UP_S) -> QTimer:
    """Freeze the heap (`freeze_start_up_heap`) on the GUI thread's first idle poll after `started()` is true
    (e.g. `MainWindow.start_up_work_done`), or after `give_up_s` in any case. The polling timer is a child of
    `owner` (it stops with it) and is returned."""
    timer = QTimer(owner)
    timer.setInterval(POLL_MS)
    deadline = time.monotonic() + give_up_s

    def poll() -> None:
        if not started() and time.monotonic() < deadline:
            return
        timer.stop()
        freeze_start_up_heap()
        if on_frozen is not None:
            on_frozen()

    timer.timeout.connect(poll)
    timer.start()
    return timer
