"""Regenerate the screenshots of the engine's limits with the shipped weights in the engine worker process:

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/scripts/scope_screenshots.py

- docs/screenshots/ai_gated.png: the AI panel on the demo CT phantom (out of scope: no draft, the reason,
  "Draft anyway...");
- docs/screenshots/ai_reading.png: the AI panel after a draft of the demo cardiomegaly radiograph (the scope
  sentence, the engine's reading with probability and prevalence, disagreements with the draft);
- docs/screenshots/qa_scope.png: the Questions panel with a refused question (devices), calibrated yes/no/
  uncertain answers with probability and prevalence, and a question on a brain MR stopped by the gate.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"


def _wait(signal, seconds: float = 600) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    signal.connect(lambda *_a: loop.quit())
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def _demo(patient: str):
    from app.ai.study_images import load_study_images

    return load_study_images(sorted((ROOT / "resources" / "demo" / patient).rglob("IM*")))


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["RADSTATION_HOME"] = tempfile.mkdtemp(prefix="rs-scope-shot-")
    sys.path.insert(0, str(ROOT))
    from pydicom.data import get_testdata_file
    from PySide6.QtWidgets import QApplication

    from app.ai.drafting import DraftService
    from app.ai.engine_client import EngineClient
    from app.ai.questions import QaService
    from app.ai.study_images import load_study_images
    from app.widgets.ai_panel import AiPanel
    from app.widgets.qa_panel import QaPanel

    app = QApplication(sys.argv[:1])
    client = EngineClient("diffusion", {"device": "cpu", "threads": 1})
    try:
        drafts = DraftService(client, None)
        panel = AiPanel(client, drafts)
        panel.resize(560, 700)
        panel.show()
        phantom = _demo("PT000003")
        panel.set_study("demo-phantom", phantom[len(phantom) // 2:len(phantom) // 2 + 1])
        panel.draft_current()
        _wait(drafts.draftOutOfScope)
        app.processEvents()
        assert panel.grab().save(str(SHOTS / "ai_gated.png"))
        panel.set_study("demo-cardiomegaly", _demo("PT000001"))
        panel.draft_current()
        _wait(drafts.draftReady)
        app.processEvents()
        assert panel.grab().save(str(SHOTS / "ai_reading.png"))

        qa = QaService(client, None)
        chat = QaPanel(qa)
        chat.resize(560, 700)
        chat.show()
        chat.set_study("demo-cardiomegaly", _demo("PT000001"))
        for q in ("Is there a pacemaker?", "Is the heart enlarged?", "Is there a pleural effusion?",
                  "Where is the nodule?"):
            chat.input.setText(q)
            chat.ask_button.click()
            _wait(qa.answered)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mr = load_study_images([Path(get_testdata_file("MR_small.dcm"))])
        chat.images = mr  # the same chat, asked about a brain MR: the input gate answers
        chat.input.setText("Is there pneumonia?")
        chat.ask_button.click()
        _wait(qa.answered)
        app.processEvents()
        assert chat.grab().save(str(SHOTS / "qa_scope.png"))
        for name in ("ai_gated.png", "ai_reading.png", "qa_scope.png"):
            print(SHOTS / name)
    finally:
        client.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
