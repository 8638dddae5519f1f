"""`radstation gui` (the default): open the workstation on the worklist (or the last study, by setting).

The first start on an empty database imports the bundled demo studies into the worklist; `--demo` opens
the first of them. Nothing is shown before someone logs in unless the site turned on kiosk mode.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gui", help="open the workstation (the default command)")
    p.add_argument("--study", help="Study Instance UID to open at start")
    p.add_argument("--demo", action="store_true", help="open the bundled demo study at start")
    p.add_argument("--no-demo", action="store_true", help="do not import the demo studies into an empty database")
    p.add_argument("--db-url", help="SQLAlchemy database URL (default: settings / RADSTATION_DB_URL / SQLite)")
    p.add_argument(
        "--screenshot",
        type=Path,
        help="save a PNG of the main window once the study is shown, then exit (docs, smoke tests)",
    )
    p.add_argument("--screenshot-delay", type=float, default=2.0, help="seconds to wait before --screenshot")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from app.db.database import Database, DatabaseError
    from app.demo_studies import demo_study_uids, ensure_demo_imported
    from app.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("RadStation")
    try:
        database = Database.open(args.db_url)
    except DatabaseError as exc:
        QMessageBox.critical(None, "RadStation", f"The study database could not be opened:\n\n{exc}")
        print(f"radstation: {exc}", file=sys.stderr)
        return 1
    study = args.study
    if not args.no_demo and (args.demo or _empty(database)):
        try:
            ensure_demo_imported(database)
            study = study or (demo_study_uids()[0] if args.demo else None)
        except (FileNotFoundError, IndexError) as exc:
            print(f"radstation: demo study not available: {exc}", file=sys.stderr)
    window = MainWindow(database)
    window.show()
    window.start_up(study)
    from app.gc_pauses import freeze_when_started

    freeze_when_started(window, window.start_up_work_done)  # start-up's heap leaves the collector's scans
    if args.screenshot is not None:
        def _shoot() -> None:
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            if app.platformName() == "xcb":  # a real X server: grab the screen so GL/VTK views show
                g = window.frameGeometry()
                pix = window.screen().grabWindow(0, g.x(), g.y(), g.width(), g.height())
            else:
                pix = window.grab()
            pix.save(str(args.screenshot))
            app.quit()

        QTimer.singleShot(int(args.screenshot_delay * 1000), _shoot)
    return app.exec()


def _empty(database) -> bool:
    from sqlalchemy import func, select

    from app.db.models import Study

    with database.session() as s:
        return not s.scalar(select(func.count(Study.id)))
