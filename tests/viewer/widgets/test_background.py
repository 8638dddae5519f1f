"""The GUI's one background helper: results, errors and progress on the GUI thread, cancel, and the teardown
hazards that crashed full runs (SIGSEGV in the GUI thread): an owner destroyed while its job runs, or after
the job finished but before its result was delivered, and a widget whose last reference a job held."""

from __future__ import annotations

import gc
import threading
import weakref

import shiboken6
from PySide6.QtWidgets import QWidget

from viewer.io.refs import StudyRef
from viewer.measure.store import InMemoryMeasurementStore
from viewer.widgets.background import BackgroundRunner, pending_jobs
from viewer.widgets.workspace import ViewerWorkspace


def _drained(qtbot) -> None:
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=20000)


def test_result_error_and_progress_arrive_in_order_on_the_gui_thread(qtbot) -> None:
    owner = QWidget()
    qtbot.addWidget(owner)
    runner = BackgroundRunner(owner)
    gui = threading.get_ident()
    seen: list = []

    def work(job):
        for n in range(5):
            job.progress(n, 5)
        return threading.get_ident()

    runner.start(work, on_done=lambda tid: seen.append(("done", tid)),
                 on_progress=lambda n, total: seen.append((n, total, threading.get_ident())))
    runner.submit(lambda: 1 / 0, on_done=seen.append, on_error=lambda exc: seen.append(type(exc).__name__))
    _drained(qtbot)
    progress = [s for s in seen if len(s) == 3]
    assert [p[:2] for p in progress] == [(n, 5) for n in range(5)] and all(p[2] == gui for p in progress)
    assert seen.index(progress[-1]) < seen.index(next(s for s in seen if s[0] == "done"))
    assert next(s for s in seen if s[0] == "done")[1] != gui  # the work ran off the GUI thread
    assert "ZeroDivisionError" in seen and not runner.busy()


def test_cancel_is_seen_by_running_work_and_queued_short_work_never_runs(qtbot) -> None:
    owner = QWidget()
    qtbot.addWidget(owner)
    runner = BackgroundRunner(owner)
    release, started = threading.Event(), threading.Event()
    ran: list[str] = []
    results: list = []

    def long_work(job):
        started.set()
        while not job.cancelled():
            release.wait(0.01)
        return "stopped"

    job = runner.start(long_work, on_done=results.append)
    assert started.wait(5)
    gate = threading.Event()
    blockers = [runner.submit(gate.wait, 5, on_done=results.append) for _ in range(2)]  # both short slots
    queued = runner.submit(lambda: ran.append("queued"), on_done=results.append)
    queued.cancel()
    job.cancel()
    gate.set()
    _drained(qtbot)
    assert "stopped" in results and ran == [] and len(results) == 3 and all(b.running() is False for b in blockers)


def test_owner_destroyed_while_its_job_runs(qtbot) -> None:
    owner = QWidget()
    runner = BackgroundRunner(owner)
    go = threading.Event()
    delivered: list = []
    runner.start(lambda job: (go.wait(5), job.progress(1))[0], on_done=delivered.append,
                 on_progress=delivered.append)
    shiboken6.delete(owner)  # the window closes at once, the job still runs
    go.set()
    _drained(qtbot)
    assert delivered == [] and not shiboken6.isValid(runner)


def test_owner_destroyed_after_the_job_finished_but_before_delivery(qtbot) -> None:
    owner = QWidget()
    runner = BackgroundRunner(owner)
    delivered: list = []
    job = runner.start(lambda _job: "result", on_done=delivered.append)
    job.join(5)  # finished; no event processed, so nothing delivered yet
    assert job.running()
    shiboken6.delete(owner)
    _drained(qtbot)
    assert delivered == [] and not job.running()


def test_a_widget_held_only_by_a_job_is_released_on_the_gui_thread(qtbot) -> None:
    """A top-level widget whose last Python reference is the job's work: the reference must be dropped on the
    GUI thread (a Qt widget deleted on a worker thread crashes the process)."""
    released_on: list[int] = []
    widget = QWidget()
    weakref.finalize(widget, lambda: released_on.append(threading.get_ident()))
    runner_owner = QWidget()
    qtbot.addWidget(runner_owner)
    runner = BackgroundRunner(runner_owner)
    job = runner.start(lambda _job, w=widget: w.objectName(), on_done=lambda _r: None)
    del widget
    job.join(5)
    gc.collect()
    assert released_on == []  # still held by the job, whose thread has ended
    _drained(qtbot)
    gc.collect()
    assert released_on == [threading.get_ident()]


def test_workspace_destroyed_while_icons_and_presentation_states_are_read(qtbot, study: StudyRef) -> None:
    ws = ViewerWorkspace()
    ws.resize(900, 600)
    ws.show()
    ws.open_study(study, InMemoryMeasurementStore())  # starts thumbnail icons and the GSPS/KOS read
    assert not ws.thumbnails.icons_ready()
    shiboken6.delete(ws)
    _drained(qtbot)


def test_workspace_destroyed_with_finished_icons_not_yet_delivered(qtbot, study: StudyRef) -> None:
    ws = ViewerWorkspace()
    ws.resize(900, 600)
    ws.show()
    ws.open_study(study, InMemoryMeasurementStore())
    for job in list(ws.thumbnails._runner._jobs):
        job.join(10)
    shiboken6.delete(ws)
    _drained(qtbot)


def test_serial_jobs_run_one_at_a_time_in_the_order_started(qtbot) -> None:
    owner = QWidget()
    qtbot.addWidget(owner)
    runner = BackgroundRunner(owner)
    order: list[int] = []
    running = threading.Semaphore(1)

    def work(n: int):
        assert running.acquire(blocking=False), "two serial jobs ran at once"
        try:
            threading.Event().wait(0.02 if n % 2 == 0 else 0.0)
            order.append(n)
        finally:
            running.release()
        return n

    done: list[int] = []
    for n in range(6):
        runner.start(lambda _job, n=n: work(n), on_done=done.append, serial=True)
    _drained(qtbot)
    assert order == list(range(6)) and done == list(range(6))


def test_jobs_are_started_off_the_calling_thread_and_wait_covers_those_not_started_yet(qtbot) -> None:
    """`start` queues the job's thread for the launcher instead of starting it itself (`Thread.start` blocks the
    GUI thread until the new thread has run: 10-30 ms each under load); `wait` right after `start` must still
    wait for jobs the launcher has not started yet, and each job still runs on its own thread."""
    owner = QWidget()
    qtbot.addWidget(owner)
    runner = BackgroundRunner(owner)
    ran_on: list[int] = []
    lock = threading.Lock()

    def work(_job, n: int) -> int:
        with lock:
            ran_on.append(threading.get_ident())
        return n

    delivered: list[int] = []
    jobs = [runner.start(lambda job, n=n: work(job, n), on_done=delivered.append) for n in range(20)]
    assert runner.wait(30)
    assert len(ran_on) == 20 and threading.get_ident() not in ran_on
    assert not any(job.alive() for job in jobs)
    _drained(qtbot)
    assert sorted(delivered) == list(range(20))
