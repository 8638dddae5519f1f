"""QaPanel driven like a user against a real worker (tiny LLaVA) and a real study database: ask, get an
answer with its confidence, an honest refusal out of scope, history per study, nothing typed lost."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app.ai.engine_client import EngineClient
from app.ai.question_scope import CANNOT_ANSWER
from app.ai.questions import QaService
from app.ai.study_images import StudyImage
from app.widgets.qa_panel import QaPanel, overlay_image
from tests.support.tiny_backends import build_tiny_llava

TIMEOUT = 60_000
IMAGES = [StudyImage((np.random.default_rng(0).random((64, 64)) * 4095).astype(np.uint16), "1.9.1", "DX", "PA", "PA")]


@pytest.fixture(scope="module")
def client(qapp, tmp_path_factory):
    model = build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))
    c = EngineClient("hf-vlm", {"path": str(model), "device": "cpu", "threads": 1, "answer_max_new_tokens": 4})
    yield c
    c.shutdown()


@pytest.fixture
def db(tmp_path, monkeypatch):
    from app.db.database import Database
    from app.db.models import Patient, Study

    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    database = Database.open(f"sqlite:///{tmp_path / 'qa.db'}", store_dir=tmp_path / "store")
    with database.session() as s:
        p = Patient(patient_key="|P1", patient_id="P1", name="DOE^JANE")
        s.add_all([Study(study_uid="1.2.3.1", patient=p), Study(study_uid="1.2.3.2", patient=p)])
    yield database
    database.dispose()


def _type_and_ask(qtbot, panel: QaPanel, text: str) -> None:
    panel.input.clear()
    qtbot.keyClicks(panel.input, text)
    qtbot.keyClick(panel.input, Qt.Key.Key_Return)


def test_ask_answer_refusal_and_history_per_study(qtbot, client, db) -> None:
    panel = QaPanel(QaService(client, db, min_confidence=0.0))
    qtbot.addWidget(panel)
    panel.resize(420, 480)
    panel.show()
    assert not panel.input.isEnabled()
    panel.set_study("1.2.3.1", IMAGES)
    assert "No questions yet" in panel.transcript()
    with qtbot.waitSignal(panel.qa.answered, timeout=TIMEOUT):
        _type_and_ask(qtbot, panel, "Is there a pleural effusion?")
        assert "thinking..." in panel.transcript() and panel.input.text() == ""
    text = panel.transcript()
    assert "You: Is there a pleural effusion?" in text and "(confidence " in text and "thinking" not in text
    with qtbot.waitSignal(panel.qa.answered, timeout=2000):
        _type_and_ask(qtbot, panel, "What is the patient's name?")
    assert CANNOT_ANSWER in panel.transcript()
    panel.set_study("1.2.3.2", IMAGES)
    assert "No questions yet" in panel.transcript()
    panel.set_study("1.2.3.1", IMAGES)  # history comes back from the database
    assert panel.transcript().count("You:") == 2
    fresh = QaPanel(QaService(client, db))
    qtbot.addWidget(fresh)
    fresh.set_study("1.2.3.1", IMAGES)
    assert "Is there a pleural effusion?" in fresh.transcript()
    if os.environ.get("RADSTATION_SCREENSHOTS"):
        panel.input.setText("Is the heart enlarged?")
        out = Path(__file__).resolve().parents[3] / "docs" / "screenshots" / "ai_qa_panel.png"
        assert panel.grab().save(str(out))


def test_a_failed_question_goes_back_into_the_input(qtbot, client, db) -> None:
    qa = QaService(client, db, min_confidence=0.0)
    panel = QaPanel(qa)
    qtbot.addWidget(panel)
    panel.set_study("1.2.3.2", IMAGES)
    broken = [StudyImage(np.zeros((2, 2)), "x", "DX", "PA")]  # too small: the engine refuses it
    panel.images = broken
    with qtbot.waitSignal(qa.failed, timeout=TIMEOUT):
        _type_and_ask(qtbot, panel, "Is the heart enlarged?")
    assert panel.input.text() == "Is the heart enlarged?"
    assert "Not answered: image 0 has shape (2, 2)" in panel.transcript()


def test_region_map_overlay() -> None:
    img = overlay_image(np.arange(64 * 64, dtype=np.float32).reshape(64, 64), np.eye(4), size=32)
    assert (img.width(), img.height()) == (32, 32)
    assert img.pixelColor(0, 0).red() > img.pixelColor(0, 0).green()  # hot cell tinted red
    assert img.pixelColor(31, 0).red() == img.pixelColor(31, 0).green()  # cold cell left gray
