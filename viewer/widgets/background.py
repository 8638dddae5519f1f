"""The one way the GUI runs work off its thread: `BackgroundRunner` (result, error and progress back on the
GUI thread, cancel), used by every widget of the viewer and the app.

Why it is built this way: full test runs died with SIGSEGV in the GUI thread when a widget was destroyed while
its QThread wrapper was running or finished but not yet deleted (the Similar studies panel, the workspace's
thumbnail icons and GSPS/KOS read). Here no QThread and no cross-thread signal exists: work runs on plain
Python threads, which only store their result; one timer on the GUI thread delivers results, errors and
progress to the runner's callbacks while the runner (a child of its widget) is alive and drops them
silently once it is gone. Every Python reference a job holds (the work, its arguments, the callbacks, the
result, often a widget's bound method) is released on the GUI thread after the job's thread has ended, so a
widget is never deallocated on a worker thread.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QTimer

POLL_MS = 30
_SHORT_JOBS = threading.Semaphore(2)  # decoding icons/volumes: two at a time, as the viewer's pool had
_EVENTS = itertools.count()  # orders progress and outcomes of all jobs as they happened (like queued signals)


class Job:
    """One piece of work. The work is called as `work(job)`: it may call `job.progress(*values)` (each call
    reaches `on_progress(*values)` on the GUI thread) and should poll `job.cancelled()`. Progress and results
    of all jobs reach the GUI thread in the order they happened, as queued signals would."""

    def __init__(self, runner: BackgroundRunner, work: Callable[[Job], Any], on_done: Callable[[Any], None] | None,
                 on_error: Callable[[BaseException], None] | None,
                 on_progress: Callable[..., None] | None, short: bool, after: Job | None = None) -> None:
        self._runner: BackgroundRunner | None = runner
        self._after = after  # serial work: runs once this job's thread has ended
        self._work: Callable[[Job], Any] | None = work
        self._callbacks: tuple | None = (on_done, on_error, on_progress)
        self._short = short
        self._lock = threading.Lock()
        self.cancel_event = threading.Event()  # set by cancel(); for work that takes an Event/token
        self._started = False
        self._skipped = False
        self._progress: collections.deque[tuple[int, tuple]] = collections.deque()  # (event number, values)
        self._outcome: tuple[bool, Any] | None = None  # (ok, result or exception)
        self._outcome_at = -1  # event number of the outcome
        self._thread = threading.Thread(target=self._run, name="radstation-job", daemon=False)
        self._launched = threading.Event()  # set once `_thread` was started (by the launcher, see `_launch`)

    def progress(self, *values: Any) -> None:
        """Report progress from the work (any thread)."""
        self._progress.append((next(_EVENTS), values))

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def cancel(self) -> None:
        """Ask the work to stop: it sees `cancelled()` and its result (or error) is still delivered. Short
        work still waiting for its turn never runs and reports nothing."""
        self.cancel_event.set()
        with self._lock:
            if self._short and not self._started:
                self._skipped = True

    def detach(self) -> None:
        """Nothing more from this job reaches the callbacks (GUI thread; the work itself runs on)."""
        self._callbacks = None

    def running(self) -> bool:
        """Not yet delivered (GUI thread view: true until its result was handed over or dropped)."""
        return self._runner is not None

    def alive(self) -> bool:
        """The work's thread has not ended yet (or not even been started by the launcher)."""
        return not self._launched.is_set() or self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the work's thread to end, at most `timeout` seconds; whether it has."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._launched.wait(timeout):
            return False
        self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()

    def _run(self) -> None:
        work = self._work
        try:
            after, self._after = self._after, None
            if after is not None:
                after.join()
            del after  # holds no work, callbacks or result of its own once delivered (see _finish)
            if self._skipped:
                return
            if self._short:
                _SHORT_JOBS.acquire()
            try:
                with self._lock:
                    if self._skipped:
                        return
                    self._started = True
                try:
                    self._outcome = (True, work(self))  # type: ignore[misc]
                except BaseException as exc:  # noqa: BLE001 - handed to on_error on the GUI thread
                    self._outcome = (False, exc)
            finally:
                if self._short:
                    _SHORT_JOBS.release()
        finally:
            self._outcome_at = next(_EVENTS)
            del work  # the GUI thread releases the last reference, after this thread has ended

    def _events(self) -> list[tuple[int, int, Job, tuple | None]]:
        """GUI thread: (event number, 0 progress / 1 outcome, job, values) that are ready to hand over; the
        outcome once the thread has ended (checked first, so no progress of it can come later)."""
        ended = not self.alive()
        events: list[tuple[int, int, Job, tuple | None]] = []
        while self._progress:
            at, values = self._progress.popleft()
            events.append((at, 0, self, values))
        if ended:
            events.append((self._outcome_at, 1, self, None))
        return events

    def _listening(self) -> bool:
        runner = self._runner
        return runner is not None and shiboken6.isValid(runner) and self._callbacks is not None

    def _hand_progress(self, values: tuple) -> None:
        if self._listening() and self._callbacks is not None and self._callbacks[2] is not None:
            self._callbacks[2](*values)

    def _finish(self) -> None:
        """GUI thread: hand over the outcome (while someone listens) and release every reference, here."""
        listening, outcome, callbacks = self._listening(), self._outcome, self._callbacks
        self._runner = self._work = self._callbacks = self._outcome = None
        if not listening or callbacks is None or outcome is None:
            return
        ok, value = outcome
        on_done, on_error, _ = callbacks
        if ok and on_done is not None:
            on_done(value)
        elif not ok and on_error is not None:
            on_error(value)


class _Dispatcher(QObject):
    """The GUI thread's side: one timer for every runner, so a job outlives its runner safely."""

    def __init__(self, app: QCoreApplication) -> None:
        super().__init__(app)
        self.jobs: list[Job] = []
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)

    def add(self, job: Job) -> None:
        self.jobs.append(job)
        if not self.timer.isActive():
            self.timer.start()

    def poll(self) -> None:
        events = []
        for job in list(self.jobs):
            if job._runner is None:  # delivered already
                self.jobs.remove(job)
            else:
                events += job._events()
        events.sort(key=lambda e: (e[0], e[1]))
        for _at, kind, job, values in events:
            if kind == 0:
                job._hand_progress(values)  # type: ignore[arg-type]
            else:
                if job in self.jobs:
                    self.jobs.remove(job)
                job._finish()
        if not self.jobs:
            self.timer.stop()


_dispatcher: _Dispatcher | None = None
_to_launch: queue.SimpleQueue[Job] = queue.SimpleQueue()
_launcher: threading.Thread | None = None
_launcher_lock = threading.Lock()


def _launch_forever() -> None:
    while True:
        job = _to_launch.get()
        try:
            job._thread.start()
        except BaseException as exc:  # noqa: BLE001 - no thread to be had: the job reports it as its error
            job._outcome, job._outcome_at = (False, exc), next(_EVENTS)
        finally:
            job._launched.set()
        del job  # the dispatcher keeps the job until the GUI thread has handed it over


def _launch(job: Job) -> None:
    """Start the job's thread from the launcher thread: `Thread.start()` blocks until the new thread has run,
    which on a loaded machine (2 cores, load 10) took 10-30 ms per job on the GUI thread (five jobs on opening
    a study: a 100 ms stall); queueing it here never blocks."""
    global _launcher
    with _launcher_lock:
        if _launcher is None or not _launcher.is_alive():
            _launcher = threading.Thread(target=_launch_forever, name="radstation-job-launcher", daemon=True)
            _launcher.start()
    _to_launch.put(job)


def _the_dispatcher() -> _Dispatcher:
    global _dispatcher
    app = QCoreApplication.instance()
    if app is None:
        raise RuntimeError("background work needs a running QApplication")
    if _dispatcher is None or not shiboken6.isValid(_dispatcher) or _dispatcher.parent() is not app:
        _dispatcher = _Dispatcher(app)
    return _dispatcher


def pending_jobs() -> int:
    """Jobs not yet delivered or dropped, across the application (tests wait for 0 before teardown)."""
    return len(_dispatcher.jobs) if _dispatcher is not None and shiboken6.isValid(_dispatcher) else 0


class BackgroundRunner(QObject):
    """Runs jobs for one owner (pass the widget as parent). `on_done(result)` / `on_error(exc)` /
    `on_progress(*values)` are called on the GUI thread while the runner is alive; once the owner (and so the
    runner) is destroyed its jobs run to their end and report nothing."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: list[Job] = []
        self._last_serial: Job | None = None

    def start(self, work: Callable[[Job], Any], *, on_done: Callable[[Any], None] | None = None,
              on_error: Callable[[BaseException], None] | None = None,
              on_progress: Callable[..., None] | None = None, short: bool = False,
              serial: bool = False) -> Job:
        """Run `work(job)` on its own thread (`short=True`: decoding work, two at a time app-wide;
        `serial=True`: after this runner's previous serial job has ended, so such jobs run one at a time and in
        the order started, e.g. autosaves)."""
        after = self._last_serial if serial and self._last_serial is not None else None
        job = Job(self, work, on_done, on_error, on_progress, short, after)
        if serial:
            self._last_serial = job
        self._jobs = [j for j in self._jobs if j.running()] + [job]
        _the_dispatcher().add(job)
        _launch(job)
        return job

    def submit(self, fn: Callable[..., Any], *args: Any, on_done: Callable[[Any], None],
               on_error: Callable[[BaseException], None] | None = None) -> Job:
        """`fn(*args)` as short decoding work (icons, volumes, presentation states)."""
        return self.start(lambda _job: fn(*args), on_done=on_done, on_error=on_error, short=True)

    def busy(self) -> bool:
        return any(j.running() for j in self._jobs)

    def cancel_all(self) -> None:
        """Cancel every job of this runner (see `Job.cancel`)."""
        for job in self._jobs:
            job.cancel()
        self._jobs = [j for j in self._jobs if j.running()]

    def wait(self, timeout: float | None = None) -> bool:
        """Block until this runner's job threads have ended, at most `timeout` seconds in all (closing a
        window whose work writes files or the database). True when none is left running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for job in list(self._jobs):
            job.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(j.alive() for j in self._jobs)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Cancel what has not started and wait for what has (an owner closing); whether all of it ended."""
        self.cancel_all()
        return self.wait(timeout)
