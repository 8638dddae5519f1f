"""Engine threads follow the measured load: all idle cores (up to 4) on a quiet machine, 1 on a busy one."""

from __future__ import annotations

import multiprocessing
import os
import time

from engines.device import threads_for_load


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_busy_cores_leave_one_thread():
    cores = len(os.sched_getaffinity(0))
    ctx = multiprocessing.get_context("fork")
    spinners = [ctx.Process(target=_spin, args=(3.0,)) for _ in range(cores)]
    for p in spinners:
        p.start()
    try:
        time.sleep(0.3)
        assert threads_for_load(sample_s=0.5) == 1
    finally:
        for p in spinners:
            p.join(10)


def test_never_more_than_asked_or_fewer_than_one():
    n = threads_for_load(max_threads=2, sample_s=0.1)
    assert 1 <= n <= 2
