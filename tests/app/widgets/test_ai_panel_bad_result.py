"""A result from the engine worker that the app cannot read (here: a real worker answering with a field this
version's result types do not know, as a worker of another version would) is shown in the AI and question
panels as a plain error naming the problem; no traceback, and what the user typed is kept."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app.ai.drafting import DraftService
from app.ai.engine_client import EngineClient
from app.ai.questions import QaService
from app.ai.study_images import StudyImage
from app.settings import Settings
from app.widgets.ai_panel import AiPanel
from app.widgets.qa_panel import QaPanel
from tests.support.skewed_worker import UNKNOWN_FIELD
from tests.support.tiny_backends import build_tiny_llava

TIMEOUT = 60_000
IMAGES = [StudyImage((np.random.default_rng(0).random((64, 64)) * 4095).astype(np.uint16), "1.9.1", "DX", "PA", "PA")]


@pytest.fixture(scope="module")
def client(qapp, tmp_path_factory):
    model = build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))
    c = EngineClient("hf-vlm", {"path": str(model), "device": "cpu", "threads": 1, "max_new_tokens": 4,
                                "answer_max_new_tokens": 4},
                     command=[sys.executable, "-m", "tests.support.skewed_worker"], jobs=())
    yield c
    c.shutdown()


def test_a_draft_result_that_cannot_be_read_is_a_plain_error_in_the_ai_panel(qtbot, client, tmp_path) -> None:
    panel = AiPanel(client, DraftService(client), Settings(tmp_path / "settings.json"))
    qtbot.addWidget(panel)
    panel.set_study("1.2.840.7", IMAGES)
    with qtbot.waitSignal(panel.drafts.draftFailed, timeout=TIMEOUT) as sig:
        qtbot.mouseClick(panel.draft_button, Qt.MouseButton.LeftButton)
    uid, message = sig.args
    assert uid == "1.2.840.7"
    assert "could not be read" in message and UNKNOWN_FIELD in message and "Traceback" not in message
    assert message in panel.message.text()  # the panel says it in words
    row = next(iter(panel.rows.values()))
    assert row.state == "failed" and UNKNOWN_FIELD in row.bar.toolTip()
    qtbot.waitUntil(lambda: not client.busy, timeout=TIMEOUT)


def test_an_answer_that_cannot_be_read_is_a_plain_error_in_the_question_panel(qtbot, client) -> None:
    qa = QaService(client)
    panel = QaPanel(qa)
    qtbot.addWidget(panel)
    panel.set_study("1.2.840.7", IMAGES)
    panel.input.setText("Is there a pleural effusion?")
    with qtbot.waitSignal(qa.failed, timeout=TIMEOUT) as sig:
        qtbot.keyClick(panel.input, Qt.Key.Key_Return)
    assert UNKNOWN_FIELD in sig.args[2] and "Traceback" not in sig.args[2]
    shown = panel.chat.toPlainText()
    assert "Is there a pleural effusion?" in shown and UNKNOWN_FIELD in shown
    assert panel.input.text() == "Is there a pleural effusion?"  # the question is kept to ask again
    qtbot.waitUntil(lambda: not client.busy, timeout=TIMEOUT)
