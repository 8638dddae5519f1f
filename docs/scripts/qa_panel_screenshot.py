"""Regenerate docs/screenshots/ai_qa_panel_builtin.png: the Questions panel answering with the shipped
engine weights in the engine worker process (the app's path) about a val NIH radiograph.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/scripts/qa_panel_screenshot.py

Yes/no questions about one finding are answered by the engine's finding head; the region map under the chat
is the explain hook's attention for the last question and answer.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "screenshots" / "ai_qa_panel_builtin.png"
QUESTIONS = ("Is there pneumonia?", "Is this chest radiograph normal?", "Is the heart enlarged?")


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["RADSTATION_HOME"] = tempfile.mkdtemp(prefix="rs-qa-shot-")
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.ai.engine_client import EngineClient
    from app.ai.questions import QaService
    from app.ai.study_images import StudyImage
    from app.widgets.qa_panel import QaPanel
    from lab.data.cxr import load_cxr

    app = QApplication(sys.argv[:1])
    sample = next(s for s in load_cxr(None, ("val",)) if s.source.startswith("nih"))
    pixels = (np.asarray(sample.load_image()) * 4095).astype(np.uint16)
    client = EngineClient("diffusion", {"device": "cpu", "threads": 2})
    panel = QaPanel(QaService(client, None))
    panel.resize(560, 640)
    panel.set_study("1.2.826.0.1.3680043.8.498.1", [StudyImage(pixels, sample.image_id, "DX", "PA", "PA")])
    panel.show()
    try:
        for q in QUESTIONS:
            loop = QEventLoop()
            panel.qa.answered.connect(lambda *_a, lp=loop: lp.quit())
            QTimer.singleShot(120_000, loop.quit)
            panel.input.setText(q)
            panel.ask_button.click()
            loop.exec()
        wait = QEventLoop()
        QTimer.singleShot(8000, wait.quit)  # the region map of the last answer
        wait.exec()
        app.processEvents()
        assert panel.grab().save(str(OUT))
        print(OUT)
    finally:
        client.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
