"""What the reading-room screenshot scripts share: a private data folder, the demo studies and reader, and the
two waits (let the event loop settle, then grab a widget into docs/screenshots)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "screenshots"
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # this checkout's packages, not whichever one the environment has installed

READER = ("demo", "demo-password-1", "Dr Demo Reader")


def start(prefix: str) -> Path:
    """Offscreen Qt and a fresh RADSTATION_HOME (so no real data is touched); returns that folder. Call before
    importing app code: the settings and database paths are read from it."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["RADSTATION_HOME"] = str(home)
    return home


def demo_database():
    """The app's database in the private home with the demo studies imported and the demo reader added."""
    from app.db.database import Database
    from app.demo_studies import ensure_demo_imported
    from app.reports.users import UserService

    db = Database.open()
    ensure_demo_imported(db)
    user, password, name = READER
    UserService.from_settings(db).add_user(user, password, "radiologist", display_name=name)
    return db


def wait(ms: int) -> None:
    """Run the event loop for `ms` (background reads and paints land)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def shot(widget, name: str) -> None:
    wait(400)
    widget.grab().save(str(OUT / name))
    print("wrote", OUT / name)
