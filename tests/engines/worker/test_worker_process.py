"""The real worker process running the tiny LLaVA backend: jobs, progress, cancel, errors, a killed worker."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from engines.backends.results import TextOutput
from engines.errors import JobCancelled
from engines.worker.client import WorkerClient, WorkerFailed

IMG = (np.random.default_rng(1).random((64, 64)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def worker(tiny_vlm_dir):
    with WorkerClient("hf-vlm", {"path": str(tiny_vlm_dir), "device": "cpu", "threads": 1,
                                 "max_new_tokens": 10}) as w:
        w.start()
        yield w


def test_status_reports_device_model_and_memory(worker, tiny_vlm_dir) -> None:
    st = worker.last_status
    assert st["name"] == "hf-vlm" and st["device"] == "cpu" and st["model"] == str(tiny_vlm_dir)
    assert st["memory"]["rss_mb"] > 10 and st["state"] == "ready" and st["weights_hash"]


def test_draft_and_answer_jobs_stream_progress(worker) -> None:
    seen: list[tuple[int, int]] = []
    job = worker.submit("draft", {"images": [IMG, IMG]})
    result = worker.wait(job, on_progress=lambda d, t, _stage: seen.append((d, t)))
    assert isinstance(result, TextOutput) and result.text and result.images_used == [0, 1]
    assert seen and seen[-1] == (10, 10)
    answer = worker.run("answer", {"images": [IMG], "question": "Is the heart enlarged?"})
    assert isinstance(answer, TextOutput) and answer.text and 0 < answer.confidence <= 1


def test_unsupported_job_and_bad_input_fail_cleanly_and_worker_lives_on(worker) -> None:
    with pytest.raises(WorkerFailed, match="cannot synthesise") as info:
        worker.run("synthesise", {"report": "normal"})
    assert info.value.kind == "backend"
    with pytest.raises(WorkerFailed, match="no image"):
        worker.run("draft", {"images": []})
    with pytest.raises(WorkerFailed, match="unknown job kind"):
        worker.run("paint", {})
    assert worker.run("draft", {"images": [IMG]}).text


def test_cancel_a_long_job(worker) -> None:
    job = worker.submit("draft", {"images": [IMG], "steps": 4000})
    time.sleep(0.3)
    started = time.monotonic()
    worker.cancel(job)
    with pytest.raises(JobCancelled):
        worker.wait(job, timeout=60)
    assert time.monotonic() - started < 3


def test_load_failure_is_reported(tmp_path) -> None:
    with WorkerClient("hf-vlm", {"path": str(tmp_path / "missing")}) as w, \
            pytest.raises(WorkerFailed, match="does not exist") as info:
        w.start()
    assert info.value.kind == "load"


def test_killed_worker_is_reported_as_a_crash(worker) -> None:
    """Last in the module: it kills the shared worker."""
    job = worker.submit("draft", {"images": [IMG], "steps": 4000})
    time.sleep(0.3)
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(WorkerFailed, match="stopped unexpectedly") as info:
        worker.wait(job, timeout=30)
    assert info.value.kind == "crash"
