"""`radstation gui` (the default): open the workstation, on the bundled demo study unless told otherwise."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gui", help="open the workstation (the default command)")
    p.add_argument("--study", help="Study Instance UID to open instead of the demo study")
    p.add_argument("--no-demo", action="store_true", help="start on the worklist without opening a study")
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
    window = MainWindow(database)
    window.show()
    study = args.study
    if study is None and not args.no_demo:
        try:
            ensure_demo_imported(database)
            study = demo_study_uids()[0]
        except (FileNotFoundError, IndexError) as exc:
            window.statusBar().showMessage(f"Demo study not available: {exc}", 10000)
    if study:
        window.open_study(study)
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
