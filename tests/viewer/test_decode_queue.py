"""The background decode queue runs what is on screen first and forgets what the user left behind."""

from __future__ import annotations

import threading
import time

from viewer.io.decode_queue import DecodeQueue


def test_lower_priority_number_runs_first_and_drop_cancels_pending():
    queue = DecodeQueue(workers=1)
    gate = threading.Event()
    order: list[str] = []
    blocker = queue.submit(gate.wait, priority=0)
    owner = object()
    far = queue.submit(lambda: order.append("far"), priority=5, owner=owner)
    near = queue.submit(lambda: order.append("near"), priority=1, owner=owner)
    stale = queue.submit(lambda: order.append("stale"), priority=3, owner=owner)
    assert queue.drop(owner, keep=lambda f: f is near or f is far) == 1
    gate.set()
    blocker.result(5)
    near.result(5)
    far.result(5)
    assert stale.cancelled()
    assert order == ["near", "far"]


def test_an_exception_reaches_the_future():
    queue = DecodeQueue(workers=1)
    fut = queue.submit(lambda: 1 / 0)
    assert isinstance(fut.exception(5), ZeroDivisionError)


def test_the_queue_never_keeps_an_owner_or_a_finished_job_alive() -> None:
    """An owner is a viewport widget: were the last reference to it dropped on a worker thread, its QWidget
    destructor would run off the GUI thread (full runs crashed so). Neither a queued job's owner nor a
    finished job's function may stay referenced by the queue or an idle worker."""
    import gc
    import weakref

    class Owner:
        pass

    q = DecodeQueue(workers=1, name="test-refs")
    gate = threading.Event()
    blocker = q.submit(gate.wait, priority=0)
    owner = Owner()
    payload = Owner()
    queued = q.submit(lambda p=payload: p, priority=1, owner=owner)  # waits behind the blocker
    owner_ref, payload_ref = weakref.ref(owner), weakref.ref(payload)
    del owner
    gc.collect()
    assert owner_ref() is None, "a queued job kept its owner alive"
    del payload
    gate.set()
    blocker.result(timeout=5)
    assert queued.result(timeout=5) is payload_ref()
    queued = None  # the future's result was the payload; let it go too
    deadline = time.monotonic() + 5
    while payload_ref() is not None and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    assert payload_ref() is None, "an idle worker still holds the last job's function"
