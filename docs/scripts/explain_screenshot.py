"""Regenerate docs/screenshots/explain_uncertainty.png with the shipped weights (real inference in the worker
processes): the demo cardiomegaly radiograph drafted, explained, and the image uncertainty map shown in the viewer
with its caption and colour bar.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/scripts/explain_screenshot.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["RADSTATION_HOME"] = tempfile.mkdtemp(prefix="rs-shots-")
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.db.database import Database
    from app.demo_studies import demo_study_uids, ensure_demo_imported
    from app.main_window import MainWindow
    from app.reports.users import UserService

    app = QApplication(sys.argv[:1])
    db = Database.open()
    ensure_demo_imported(db)
    window = MainWindow(db)
    window.resize(1700, 1000)
    window.show()
    users = UserService.from_settings(db)
    users.add_user("demo", "demo-password-1", "radiologist", display_name="Dr Demo Reader")
    window.set_user(users.authenticate("demo", "demo-password-1"))

    def wait(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def wait_for(signal, seconds: int) -> None:
        loop = QEventLoop()
        signal.connect(lambda *_: QTimer.singleShot(500, loop.quit))
        QTimer.singleShot(seconds * 1000, loop.quit)
        loop.exec()

    window.open_study(demo_study_uids()[1])  # the cardiomegaly radiograph
    for _ in range(600):  # the AI panel gets the study's images from a background read; Draft waits for them
        if window.ai_panel.draft_button.isEnabled():
            break
        wait(100)
    if not window.ai_panel.draft_current():
        raise SystemExit("the AI panel did not start a draft: " + window.ai_panel.message.text())
    wait_for(window.ai_panel.draftReady, 300)
    panel = window.explain_panel
    window.side_tabs.setCurrentWidget(panel)
    wait(500)
    panel.explain()
    wait_for(panel.explanationReady, 900)
    if not panel.uncertainty.isEnabled():
        raise SystemExit("no explanation with an uncertainty map: " + panel.status.text())
    panel.uncertainty.setChecked(True)
    wait(800)
    window.grab().save(str(OUT / "explain_uncertainty.png"))
    print(OUT / "explain_uncertainty.png")
    window.ai.shutdown()
    window.close()
    app.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
