"""The input gate and the question scope through the app's services and panels, against a real engine worker
(the built-in engine on a tiny random checkpoint with a finding head) and a real study database: out of
scope gives nothing, an explicit override gives a result recorded in the provenance and the audit log."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from app.ai.ai_store import drafts_for
from app.ai.drafting import DraftService
from app.ai.questions import QaService
from app.ai.study_images import StudyImage
from app.reports.models import AuditEntry
from engines.models.tiny import make_tiny_checkpoint

TIMEOUT = 120_000
PA = {"Modality": "DX", "BodyPartExamined": "CHEST", "ViewPosition": "PA", "PhotometricInterpretation": "MONOCHROME2"}
MR = {"Modality": "MR", "BodyPartExamined": "HEAD", "PhotometricInterpretation": "MONOCHROME2"}


@pytest.fixture(scope="module")
def medim_client(qapp, tmp_path_factory):
    from app.ai.engine_client import EngineClient

    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-medim"),
                                  findings=("No Finding", "Cardiomegaly", "Pleural Effusion"))
    c = EngineClient("diffusion", {"path": str(folder), "device": "cpu", "threads": 1, "steps": 2})
    yield c
    c.shutdown()


def _image(header: dict, seed: int = 0) -> StudyImage:
    pixels = np.random.default_rng(seed).integers(0, 4095, (64, 64), dtype=np.uint16)
    return StudyImage(pixels, f"1.9.{seed}", header.get("Modality", ""), header.get("ViewPosition", ""),
                      header.get("ViewPosition", "") or header.get("Modality", ""), dict(header))


def _audit(db) -> list[AuditEntry]:
    import app.reports.models  # noqa: F401

    with db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == "ai_scope_override")))


def test_out_of_scope_study_gets_no_draft_until_the_user_overrides(qtbot, medim_client, ai_db) -> None:
    drafts = DraftService(medim_client, ai_db)
    with qtbot.waitSignal(drafts.draftOutOfScope, timeout=TIMEOUT) as sig:
        drafts.draft("1.2.3.1", [_image(MR)])
    uid, scope = sig.args
    assert uid == "1.2.3.1" and not scope["in_scope"] and "Modality MR" in scope["reason"]
    assert drafts_for(ai_db, "1.2.3.1") == [] and _audit(ai_db) == []
    with qtbot.waitSignal(drafts.draftReady, timeout=TIMEOUT) as sig:
        drafts.draft("1.2.3.1", [_image(MR)], override=True, username="drwho")
    draft = sig.args[1]
    assert draft["findings"] + draft["impression"]
    assert draft["provenance"]["scope_override"] == "yes, by drwho"
    assert draft["provenance"]["scope"].startswith("Override: out of scope (Modality MR")
    entries = _audit(ai_db)
    assert len(entries) == 1 and entries[0].username == "drwho" and entries[0].object_id == "1.2.3.1"
    assert "Modality MR" in entries[0].details


def test_in_scope_study_draft_carries_scope_and_reading(qtbot, medim_client, ai_db) -> None:
    drafts = DraftService(medim_client, ai_db)
    with qtbot.waitSignal(drafts.draftReady, timeout=TIMEOUT) as sig:
        drafts.draft("1.2.3.2", [_image({**PA, "ViewPosition": "LL"}, 1), _image(PA, 2)])
    draft = sig.args[1]
    assert draft["images_used"] == ["PA"] and "1 of 2 images left out" in draft["provenance"]["scope"]
    assert set(draft["reading"]) == {"No Finding", "Cardiomegaly", "Pleural Effusion"}
    assert all("prevalence" in r and r["answer"] in ("yes", "no", "uncertain") for r in draft["reading"].values())
    assert "scope_override" not in draft["provenance"] and _audit(ai_db) == []


def test_questions_are_refused_gated_and_overridden(qtbot, medim_client, ai_db) -> None:
    qa = QaService(medim_client, ai_db)
    with qtbot.waitSignal(qa.answered, timeout=TIMEOUT) as sig:
        qa.ask("1.2.3.1", "Is there a pacemaker?", [_image(PA)])
    msg = sig.args[1]
    assert msg["refused"] and not msg["in_scope"] and "Refused: it asks about devices" in msg["answer"]
    assert "I can say whether this frontal chest radiograph shows" in msg["answer"]
    with qtbot.waitSignal(qa.answered, timeout=TIMEOUT) as sig:
        qa.ask("1.2.3.1", "Is there a pleural effusion?", [_image(MR)])
    msg = sig.args[1]
    assert msg["input_out_of_scope"] and msg["answer"].startswith("Not answered: Out of scope: Modality MR")
    with qtbot.waitSignal(qa.answered, timeout=TIMEOUT) as sig:
        qa.ask("1.2.3.1", "Is there a pleural effusion?", [_image(MR)], override=True, username="drwho")
    msg = sig.args[1]
    assert msg["answer"] in ("yes", "no", "uncertain") and msg["finding"] == "Pleural Effusion"
    assert 0 < msg["probability"] < 1 and not msg["input_out_of_scope"]
    assert [e.username for e in _audit(ai_db)] == ["drwho"]


def test_ai_panel_shows_the_reason_and_drafts_anyway_after_confirmation(qtbot, medim_client, ai_db) -> None:
    from app.widgets.ai_panel import AiPanel

    drafts = DraftService(medim_client, ai_db)
    panel = AiPanel(medim_client, drafts)
    qtbot.addWidget(panel)
    panel.show()
    asked: list[bool] = []
    panel.confirm_override = lambda: asked.append(True) or False  # the user says no first
    panel.user_provider = lambda: type("User", (), {"username": "rad1"})()
    panel.set_study("1.2.3.1", [_image(MR)])
    with qtbot.waitSignal(drafts.draftOutOfScope, timeout=TIMEOUT):
        qtbot.mouseClick(panel.draft_button, qtbot_button())
    assert panel.scope_label.text().startswith("No draft. Out of scope: Modality MR")
    assert panel.override_button.isVisible()
    qtbot.mouseClick(panel.override_button, qtbot_button())
    assert asked == [True] and _audit(ai_db) == []  # declined: nothing ran
    panel.confirm_override = lambda: True
    with qtbot.waitSignal(drafts.draftReady, timeout=TIMEOUT):
        qtbot.mouseClick(panel.override_button, qtbot_button())
    assert panel.scope_label.text().startswith("Override: out of scope")
    assert "Engine's reading" in panel.reading_view.text() and not panel.override_button.isVisible()
    assert [e.username for e in _audit(ai_db)] == ["rad1"]


def test_qa_panel_refusal_and_ask_anyway(qtbot, medim_client, ai_db) -> None:
    from PySide6.QtCore import Qt

    from app.widgets.qa_panel import QaPanel

    qa = QaService(medim_client, ai_db)
    panel = QaPanel(qa)
    qtbot.addWidget(panel)
    panel.set_study("1.2.3.1", [_image(MR)])
    with qtbot.waitSignal(qa.answered, timeout=TIMEOUT):
        qtbot.keyClicks(panel.input, "Where is the nodule?")
        qtbot.keyClick(panel.input, Qt.Key.Key_Return)
    assert "Refused: it asks about where a finding is" in panel.transcript()
    with qtbot.waitSignal(qa.answered, timeout=TIMEOUT):
        qtbot.keyClicks(panel.input, "Is the heart enlarged?")
        qtbot.mouseClick(panel.ask_button, Qt.MouseButton.LeftButton)  # the button asks what was typed
    assert panel.input.text() == ""
    assert "Not answered: Out of scope" in panel.transcript() and "override:1" in panel.chat.toHtml()
    panel.confirm_override = lambda q: q == "Is the heart enlarged?"
    with qtbot.waitSignal(qa.answered, timeout=TIMEOUT):
        assert panel.ask_anyway("Is the heart enlarged?")
    assert "probability of cardiomegaly" in panel.transcript() and "not calibrated" in panel.transcript()


def qtbot_button():
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton
