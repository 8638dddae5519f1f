"""AiPanel driven like a user: Draft (button and shortcut), auto-draft, batch pre-draft, Cancel on a long
job, and a worker killed mid-job - all against a real worker process running the tiny LLaVA backend."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app.ai.drafting import DraftService
from app.ai.engine_client import EngineClient
from app.ai.study_images import StudyImage
from app.settings import Settings
from app.widgets.ai_panel import AiPanel
from tests.support.tiny_backends import build_tiny_llava

TIMEOUT = 60_000


def _images(seed: int) -> list[StudyImage]:
    rng = np.random.default_rng(seed)
    return [StudyImage(rng.integers(0, 4095, (64, 56), dtype=np.uint16), f"1.9.{seed}.2", "DX", "LL", "LATERAL"),
            StudyImage(rng.integers(0, 4095, (64, 64), dtype=np.uint16), f"1.9.{seed}.1", "DX", "PA", "PA")]


@pytest.fixture(scope="module")
def panel(qapp, tmp_path_factory):
    model = build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))
    client = EngineClient("hf-vlm", {"path": str(model), "device": "cpu", "threads": 1, "max_new_tokens": 8})
    settings = Settings(tmp_path_factory.mktemp("cfg") / "settings.json")
    widget = AiPanel(client, DraftService(client), settings)
    widget.resize(460, 560)
    widget.show()
    yield widget
    widget.close()
    client.shutdown()


def test_draft_button_drafts_the_open_study(qtbot, panel) -> None:
    assert not panel.draft_button.isEnabled()
    statuses: list[str] = []
    panel.statusText.connect(statuses.append)
    panel.set_study("1.2.840.1", _images(1))
    assert "2 images in this study" in panel.images_label.text()
    with qtbot.waitSignal(panel.draftReady, timeout=TIMEOUT) as sig:
        qtbot.mouseClick(panel.draft_button, Qt.MouseButton.LeftButton)
    uid, draft = sig.args
    assert uid == "1.2.840.1" and draft["findings"] and draft["provenance"]["engine"] == "hf-vlm"
    assert panel.images_label.text() == "Used all 2 images: PA, LATERAL"
    row = next(iter(panel.rows.values()))
    assert row.state == "done" and row.bar.value() == row.bar.maximum() and not row.cancel_button.isVisible()
    assert any("hf-vlm" in s and "cpu" in s and "RAM" in s for s in statuses)
    assert "RAM" in panel.status_label.text()


def test_shortcut_and_auto_draft(qtbot, panel) -> None:
    panel.activateWindow()
    with qtbot.waitSignal(panel.draftReady, timeout=TIMEOUT):
        qtbot.keyClick(panel, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.mouseClick(panel.auto_draft, Qt.MouseButton.LeftButton)
    assert panel.auto_draft.isChecked() and panel.settings.get("auto_draft_on_open") is True
    assert Settings(panel.settings.path).get("auto_draft_on_open") is True  # saved
    with qtbot.waitSignal(panel.draftReady, timeout=TIMEOUT) as sig:
        panel.set_study("1.2.840.2", _images(2))
    assert sig.args[0] == "1.2.840.2"
    panel.auto_draft.setChecked(False)


def test_batch_pre_draft_shows_one_progress_bar(qtbot, panel) -> None:
    with qtbot.waitSignal(panel.drafts.batchFinished, timeout=TIMEOUT):
        jobs = panel.pre_draft([("1.2.840.3", _images(3)), ("1.2.840.4", _images(4))])
    assert len(jobs) == 2 and panel.batch_bar.value() == panel.batch_bar.maximum() == 200
    assert panel.batch_label.text() == "Pre-draft finished: 2 drafted"


def test_cancel_button_stops_a_long_job(qtbot, panel) -> None:
    panel.drafts.steps = 4000
    job = panel.draft_current()
    with qtbot.waitSignal(panel.client.progress, timeout=TIMEOUT):
        pass
    row = panel.rows[job]
    assert row.cancel_button.isVisible() and row.state == "running"
    if os.environ.get("RADSTATION_SCREENSHOTS"):
        qtbot.waitUntil(lambda: row.bar.value() > 200, timeout=TIMEOUT)
        qtbot.wait(50)
        out = Path(__file__).resolve().parents[3] / "docs" / "screenshots" / "ai_panel.png"
        assert panel.grab().save(str(out))
    with qtbot.waitSignal(panel.client.cancelled, timeout=10_000):
        qtbot.mouseClick(row.cancel_button, Qt.MouseButton.LeftButton)
    assert row.state == "cancelled" and panel.message.text() == ""


def test_killed_worker_mid_job_is_survived_and_the_next_draft_works(qtbot, panel) -> None:
    panel.drafts.steps = 4000
    job = panel.draft_current()
    with qtbot.waitSignal(panel.client.progress, timeout=TIMEOUT):
        pass
    pid = panel.client.worker_pid
    with qtbot.waitSignal(panel.client.failed, timeout=10_000):
        os.kill(pid, signal.SIGKILL)
    assert panel.rows[job].state == "failed"
    assert "engine worker stopped unexpectedly" in panel.message.text()
    assert "restart on the next job" in panel.status_label.text()
    if os.environ.get("RADSTATION_SCREENSHOTS"):
        qtbot.wait(50)
        out = Path(__file__).resolve().parents[3] / "docs" / "screenshots" / "ai_panel_worker_killed.png"
        assert panel.grab().save(str(out))
    panel.drafts.steps = None
    with qtbot.waitSignal(panel.draftReady, timeout=TIMEOUT) as sig:
        qtbot.mouseClick(panel.draft_button, Qt.MouseButton.LeftButton)
    assert sig.args[1]["findings"] and panel.client.worker_pid not in (None, pid)


def test_a_conditioned_draft_says_what_the_text_was_steered_to(panel) -> None:
    panel.study_uid = "1.2.3.told"
    panel._on_draft("1.2.3.told", {"images_note": "Read: PA", "told_findings": ["Pleural Effusion"]})
    assert "Written to the finding head's reading: Pleural Effusion." in panel.images_label.text()
    panel._on_draft("1.2.3.told", {"images_note": "Read: PA", "told_findings": []})
    assert "nothing present" in panel.images_label.text()
    panel._on_draft("1.2.3.told", {"images_note": "Read: PA"})
    assert panel.images_label.text() == "Read: PA"
