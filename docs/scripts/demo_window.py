"""What the main-window screenshot scripts share: the app on a fresh temporary data folder with the demo
studies and a logged-in demo radiologist, waiting on the event loop, and drafting a demo study with the
shipped weights (real inference in the engine worker, as the app does it).

Imported by its name from the scripts beside it (`python docs/scripts/X.py` puts this folder on sys.path).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"


def out_dir(description: str) -> Path:
    """The folder the screenshots go to: docs/screenshots, or `--out DIR` (to look before replacing)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=SCREENSHOTS, help="folder for the PNGs (default: %(default)s)")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    return out


def open_window():
    """(QApplication, MainWindow) on a temporary RADSTATION_HOME: demo studies imported, 1700 x 1000, shown,
    a demo radiologist logged in. Imports this checkout's code, not an installed copy."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["RADSTATION_HOME"] = tempfile.mkdtemp(prefix="rs-shots-")
    sys.path.insert(0, str(ROOT))
    from PySide6.QtWidgets import QApplication

    from app.db.database import Database
    from app.demo_studies import ensure_demo_imported
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
    return app, window


def wait(ms: int) -> None:
    """Run the event loop for `ms` milliseconds (background results arrive, widgets repaint)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_for(signal, seconds: int, settle_ms: int = 500) -> None:
    """Run the event loop until `signal` fires (then `settle_ms` more, to paint) or `seconds` pass."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    signal.connect(lambda *_: QTimer.singleShot(settle_ms, loop.quit))
    QTimer.singleShot(seconds * 1000, loop.quit)
    loop.exec()


def draft_demo(window, index: int = 1, settle_ms: int = 500) -> None:
    """Open demo study `index` (1: the cardiomegaly radiograph) and draft its report with the AI panel."""
    from app.demo_studies import demo_study_uids

    window.open_study(demo_study_uids()[index])
    for _ in range(600):  # the AI panel gets the study's images from a background read; Draft waits for them
        if window.ai_panel.draft_button.isEnabled():
            break
        wait(100)
    if not window.ai_panel.draft_current():
        raise SystemExit("the AI panel did not start a draft: " + window.ai_panel.message.text())
    wait_for(window.ai_panel.draftReady, 300, settle_ms)


def close(app, window) -> None:
    window.ai.shutdown()
    window.close()
    app.quit()
