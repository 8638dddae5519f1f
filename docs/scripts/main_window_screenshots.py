"""Regenerate the main-window screenshots in docs/screenshots (offscreen Qt, temporary data dir).

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/scripts/main_window_screenshots.py

Opens the demo study, logs in a demo radiologist, drafts the report with the shipped engine weights
(real inference in the worker process) and saves the window: worklist, viewer + drafted report, explain.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "screenshots"


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

    window.worklist.refresh()
    window.tabs.setCurrentWidget(window.worklist)
    wait(500)
    window.grab().save(str(OUT / "main_worklist.png"))

    uid = demo_study_uids()[1]  # the study with a finding
    window.open_study(uid)
    for _ in range(600):  # the AI panel gets the study's images from a background read; Draft waits for them
        if window.ai_panel.draft_button.isEnabled():
            break
        wait(100)
    loop = QEventLoop()
    window.ai_panel.draftReady.connect(lambda *_: QTimer.singleShot(1500, loop.quit))
    if not window.ai_panel.draft_current():
        raise SystemExit("the AI panel did not start a draft: " + window.ai_panel.message.text())
    QTimer.singleShot(300_000, loop.quit)
    loop.exec()
    window.grab().save(str(OUT / "main_window.png"))
    window.side_tabs.setCurrentWidget(window.ai_panel)
    wait(300)
    window.grab().save(str(OUT / "main_ai_panel.png"))
    window.ai.shutdown()
    window.close()
    app.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
