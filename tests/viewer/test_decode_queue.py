"""The background decode queue runs what is on screen first and forgets what the user left behind."""

from __future__ import annotations

import threading

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
