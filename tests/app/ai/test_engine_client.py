"""EngineClient drives a real worker process: jobs, progress, status, cancel, a bad model dir.

A worker killed mid-job is tested through the AiPanel (tests/app/widgets/test_ai_panel.py)."""

from __future__ import annotations

import numpy as np

from app.ai.engine_client import EngineClient
from app.ai.services import AiServices
from app.settings import Settings
from engines.backends.results import TextOutput

IMG = (np.random.default_rng(0).random((48, 48)) * 255).astype(np.uint8)
TIMEOUT = 60_000


def _run(qtbot, client, kind, params):
    results: dict = {}
    client.finished.connect(lambda jid, r: results.setdefault(jid, ("ok", r)))
    client.failed.connect(lambda jid, m: results.setdefault(jid, ("failed", m)))
    client.cancelled.connect(lambda jid: results.setdefault(jid, ("cancelled", None)))
    job = client.submit(kind, params)
    qtbot.waitUntil(lambda: job in results, timeout=TIMEOUT)
    return results[job]


def test_draft_streams_progress_and_status(qtbot, client, tiny_vlm_dir) -> None:
    statuses: list[dict] = []
    progress: list[tuple[int, int]] = []
    client.status.connect(statuses.append)
    client.progress.connect(lambda jid, d, t: progress.append((d, t)))
    state, result = _run(qtbot, client, "draft", {"images": [IMG]})
    assert state == "ok" and isinstance(result, TextOutput) and result.text and result.provenance["engine"] == "hf-vlm"
    assert progress and progress[-1] == (6, 6)
    ready = [s for s in statuses if s.get("state") in ("ready", "busy") and s.get("device")]
    assert ready and ready[-1]["model"] == str(tiny_vlm_dir) and ready[-1]["memory"]["rss_mb"] > 0


def test_cancel_running_and_queued_jobs(qtbot, client) -> None:
    ended: dict[str, str] = {}
    client.cancelled.connect(lambda jid: ended.setdefault(jid, "cancelled"))
    client.finished.connect(lambda jid, r: ended.setdefault(jid, "done"))
    long_job = client.submit("draft", {"images": [IMG], "steps": 4000})
    queued = client.submit("draft", {"images": [IMG]})
    assert client.cancel(queued) and ended[queued] == "cancelled"  # never reached the worker
    with qtbot.waitSignal(client.progress, timeout=TIMEOUT):
        pass
    assert client.cancel(long_job)
    qtbot.waitUntil(lambda: long_job in ended, timeout=10_000)
    assert ended[long_job] == "cancelled" and not client.busy
    assert client.cancel("job-unknown") is False


def test_errors_from_the_engine_are_reported_and_the_worker_lives_on(qtbot, client) -> None:
    state, message = _run(qtbot, client, "synthesise", {"report": "normal"})
    assert state == "failed" and "cannot synthesise" in message
    assert _run(qtbot, client, "draft", {"images": [IMG]})[0] == "ok"


def test_engine_is_chosen_in_settings_and_a_missing_directory_is_a_clear_error(qtbot, qapp, tmp_path,
                                                                              tiny_vlm_dir) -> None:
    settings = Settings(tmp_path / "settings.json")
    settings.set("engine", "hf-vlm")
    settings.set("engine_device", "cpu")
    settings.set("engine_model_path", str(tmp_path / "nowhere"))
    ai = AiServices.from_settings(settings, None)
    try:
        state, message = _run(qtbot, ai.client, "draft", {"images": [IMG]})
        assert state == "failed" and "could not be loaded" in message and "does not exist" in message
        assert ai.client.last_status["state"] == "error" and ai.client.worker_pid is None
        settings.set("engine_model_path", str(tiny_vlm_dir))
        settings.set("engine_options", {"max_new_tokens": 3})
        ai.apply_settings(settings)  # no code change: the next job runs on the newly configured engine
        state, result = _run(qtbot, ai.client, "draft", {"images": [IMG]})
        assert state == "ok" and result.steps == 3 and result.provenance["model"] == str(tiny_vlm_dir)
    finally:
        ai.shutdown()


def test_the_cli_worker_entry_speaks_the_same_protocol(qtbot, qapp, tmp_path) -> None:
    """`radstation engine worker` is how a frozen build (no `python -m`) starts its worker."""
    import sys

    c = EngineClient("hf-vlm", {"path": str(tmp_path / "nowhere")},
                     command=[sys.executable, "-m", "app", "engine", "worker"])
    try:
        state, message = _run(qtbot, c, "draft", {"images": [IMG]})
        assert state == "failed" and "does not exist" in message
    finally:
        c.shutdown()


def test_a_served_engine_that_is_down_is_a_clear_failure_and_the_app_goes_on(qtbot, qapp, tmp_path,
                                                                             tiny_vlm_dir) -> None:
    import socket

    import pytest

    pytest.importorskip("openai")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    settings = Settings(tmp_path / "settings.json")
    settings.set("engine", "openai-compatible")
    settings.set("engine_options", {"url": f"http://127.0.0.1:{port}/v1", "model": "medgemma", "timeout_s": 5})
    ai = AiServices.from_settings(settings, None)
    try:
        state, message = _run(qtbot, ai.client, "draft", {"images": [IMG]})
        assert state == "failed" and f"cannot reach the engine server at http://127.0.0.1:{port}/v1" in message
        assert "Traceback" not in message
        settings.set("engine", "hf-vlm")
        settings.set("engine_device", "cpu")
        settings.set("engine_model_path", str(tiny_vlm_dir))
        settings.set("engine_options", {"max_new_tokens": 3})
        ai.apply_settings(settings)
        assert _run(qtbot, ai.client, "draft", {"images": [IMG]})[0] == "ok"
    finally:
        ai.shutdown()
