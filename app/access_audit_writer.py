"""One thread that writes access-audit entries in the order they happened, so the GUI never waits for them.

Opening a study wrote two audit entries on the GUI thread (each a write transaction with an fsync'd
high-water mark: ~30 ms, far more on a loaded machine or a remote database). Entries now go into a FIFO
queue served by one thread: the order is the order of `submit`, a write that fails is retried (the entry
stays at the head of the queue, so later entries never overtake it), and `flush` waits until everything
queued is in the database - the main window calls it when it closes and `atexit` does at interpreter exit.
An entry is dropped only when every retry failed; it is then logged in full (never silently).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # after the database's own busy retries; ~19 s in all


@dataclass
class _Entry:
    write: Callable[[], None]
    describe: str
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False


class AccessAuditWriter:
    """FIFO writer thread. `submit(write, describe)` returns at once; `wait=True` blocks until written."""

    def __init__(self, retry_delays: tuple[float, ...] = RETRY_DELAYS_S) -> None:
        self.retry_delays = retry_delays
        self._queue: deque[_Entry] = deque()
        self._cond = threading.Condition()
        self._busy = False  # an entry taken off the queue is being written
        self._thread: threading.Thread | None = None
        self.failed = 0  # entries given up after every retry (logged)

    def start(self) -> None:
        """Start the writer thread now if it is not running (`submit` does it otherwise). Starting a thread waits
        until the OS runs it: the study-open warm-up calls this, so the first study opened does not wait."""
        with self._cond:
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="access-audit", daemon=True)
            self._thread.start()

    def submit(self, write: Callable[[], None], describe: str, *, wait: bool = False) -> bool:
        """Queue `write()` (one audit entry, its own transaction). With `wait`, return whether it was written."""
        entry = _Entry(write, describe)
        with self._cond:
            self._queue.append(entry)
            self._ensure_thread()
            self._cond.notify_all()
        if not wait:
            return True
        if self._thread is threading.current_thread():  # an entry written while writing one: never deadlock
            return False
        entry.done.wait()
        return entry.ok

    def pending(self) -> int:
        """Entries not yet in the database (queued or being written)."""
        with self._cond:
            return len(self._queue) + (1 if self._busy else 0)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every entry queued so far was written (or given up); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    log.error("%d access-audit entries not yet written at flush", len(self._queue) + self._busy)
                    return False
                self._cond.wait(left)
        return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                entry = self._queue.popleft()
                self._busy = True
            try:
                entry.ok = self._write(entry)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
                entry.done.set()

    def _write(self, entry: _Entry) -> bool:
        for attempt in range(len(self.retry_delays) + 1):
            try:
                entry.write()
                return True
            except Exception as exc:  # noqa: BLE001 - an audit write must never take the user's work down
                if attempt == len(self.retry_delays):
                    self.failed += 1
                    log.error("access-audit entry NOT written after %d tries (%s): %s", attempt + 1, exc,
                              entry.describe)
                    return False
                log.warning("access-audit entry not written yet (%s), retrying: %s", exc, entry.describe)
                time.sleep(self.retry_delays[attempt])
        return False


WRITER = AccessAuditWriter()
atexit.register(WRITER.flush, 30.0)
