"""A sentence draft through the real engine worker (the diffusion engine, shipped weights) into the AI panel:
the chosen sentences are listed with their confidence, unsure ones tinted (the editor's shading setting), in the
chest template's section order; the 'free text' mode still drafts token by token."""

from __future__ import annotations

from html import escape
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.ai.drafting import DraftService
from app.ai.engine_client import EngineClient
from app.ai.study_images import StudyImage, load_study_images
from app.settings import Settings
from app.widgets.ai_panel import AiPanel
from engines.sentences.sections import section_order

TIMEOUT = 120_000
DEMO = Path(__file__).resolve().parents[3] / "resources" / "demo"


def _images() -> list[StudyImage]:
    """A real frontal chest radiograph (the demo cardiomegaly study): the engine's input gate turns away
    images that are not one, so a drawn pattern would get no draft."""
    return load_study_images(sorted((DEMO / "PT000001").rglob("IM*")))


@pytest.fixture(scope="module")
def panel(qapp, tmp_path_factory):
    client = EngineClient("diffusion", {"device": "cpu", "threads": 1,
                                        "cases_dir": str(tmp_path_factory.mktemp("cases"))})
    settings = Settings(tmp_path_factory.mktemp("cfg") / "settings.json")
    widget = AiPanel(client, DraftService(client), settings)
    widget.show()
    yield widget
    widget.close()
    client.shutdown()


def test_sentence_drafts_list_their_sentences_with_confidence(qtbot, panel):
    panel.set_study("1.2.840.77", _images())
    with qtbot.waitSignal(panel.draftReady, timeout=TIMEOUT) as sig:
        qtbot.mouseClick(panel.draft_button, Qt.MouseButton.LeftButton)
    _, draft = sig.args
    sentences = draft["sentences"]
    assert draft["draft_mode"] == "sentences" and sentences
    assert panel.sentence_list.isVisible() and panel.sentence_list.count() == len(sentences)
    for i, s in enumerate(sentences):
        item = panel.sentence_list.item(i)
        assert s["text"] in item.text() and s["sources"][0] in item.text()
        unsure = s["confidence"] is not None and 1 - s["confidence"] >= panel.unsure_threshold()
        assert (item.data(Qt.ItemDataRole.UserRole) == "unsure") == unsure
        assert ("not read" in item.text()) == (s["confidence"] is None)
    # findings follow the chest template's sections (lungs, pleura, heart, bones)
    rank = {k: n for n, k in enumerate(section_order("Lungs: x\nPleura: x\nHeart and mediastinum: x\nBones: x"))}
    ranks = [rank[s["section"]] for s in sentences if s["part"] == "findings"]
    assert ranks == sorted(ranks)
    assert all(s["text"] in draft["findings"] for s in sentences if s["part"] == "findings")
    # token uncertainty spans cover the sentences the reading judged
    assert {t["text"] for t in draft["token_uncertainty"]} == {s["text"] for s in sentences
                                                               if s["confidence"] is not None}


def test_free_text_mode_is_still_there(qtbot, panel):
    panel.drafts.mode = "free"
    panel.drafts.steps = 4
    try:
        with qtbot.waitSignal(panel.draftReady, timeout=TIMEOUT) as sig:
            panel.draft_current()
    finally:
        panel.drafts.mode, panel.drafts.steps = None, None
    _, draft = sig.args
    assert draft["draft_mode"] == "free" and draft["sentences"] is None
    assert not panel.sentence_list.isVisible()


def test_sentences_stating_what_the_reading_holds_uncertain_say_so(qtbot, panel):
    """The demo cardiomegaly draft states findings (e.g. "no pneumothorax") that the reading answers "uncertain":
    the panel names each beside its sentence and above the reading table; the draft's text is unchanged."""
    panel.set_study("1.2.840.77", _images())
    with qtbot.waitSignal(panel.draftReady, timeout=TIMEOUT) as sig:
        qtbot.mouseClick(panel.draft_button, Qt.MouseButton.LeftButton)
    _, draft = sig.args
    reading, firm = draft["reading"], draft["stated_uncertain"]
    assert firm, "the demo draft no longer states a finding its reading holds uncertain: pick another case"
    assert all(reading[u["finding"]]["answer"] == "uncertain" for u in firm)
    html = panel.reading_view.text()
    assert html.count("Stated although the reading is uncertain") == 1  # one paragraph, not one per finding
    for u in firm:
        assert f"{escape(u['finding'].lower())} ({u['probability']:.0%})" in html
    if any(u["text_state"] == "present" for u in firm):
        assert "the draft states " in html
    if any(u["text_state"] == "absent" for u in firm):
        assert "denies " in html
    marked = 0
    for i, s in enumerate(draft["sentences"]):
        held = [f for f, v in s["states"].items() if v in (0, 1) and reading.get(f, {}).get("answer") == "uncertain"]
        text = panel.sentence_list.item(i).text()
        assert ("stated although the reading is uncertain" in text) == bool(held)
        assert all(f.lower() in text for f in held)
        marked += bool(held)
    assert marked
