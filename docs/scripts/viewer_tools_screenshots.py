"""Regenerate the viewer-tool screenshots in docs/screenshots (offscreen Qt, temporary data dir).

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/scripts/viewer_tools_screenshots.py

The arrow and text-note tools on the demo chest radiograph, the same image marked Of Interest (K: sent with
the signed report as a key object selection), and Tools > Local image cache (the store as a cache of an
archive node; every demo study is local, so no PACS is contacted). No AI inference.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # screenshot_session beside this file

from screenshot_session import demo_database, shot, start, wait  # noqa: E402


def main() -> int:
    start("rs-tools-")
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.demo_studies import demo_study_uids
    from app.main_window import MainWindow
    from app.pacs.nodes import NodeStore, PacsNode
    from app.settings import Settings
    from viewer.measure.shapes import Arrow, Note
    from viewer.widgets.background import pending_jobs

    app = QApplication(sys.argv[:1])
    db = demo_database()
    NodeStore().save_all([PacsNode(name="archive", protocol="dicomweb", url="http://127.0.0.1:9/dicom-web")])
    settings = Settings()
    settings.set("archive", {"node": "archive", "cache_limit_gb": 50})
    settings.save()

    window = MainWindow(db, settings=settings)
    window.resize(1700, 1000)
    window.show()
    window.lock_screen.show_login("demo")
    QTest.keyClicks(window.lock_screen.password, "demo-password-1")
    QTest.keyClick(window.lock_screen.password, Qt.Key.Key_Return)
    while window.locked:  # the password is checked on a worker thread
        wait(100)

    window.open_study(demo_study_uids()[1])  # the cardiomegaly radiograph
    while window.report_editor.opening or not window.ai_images_ready:
        wait(50)
    vp = window.workspace.active_viewport()
    image = vp.current_image()
    rows, cols = image.rows, image.columns
    vp.add_measurement(Arrow(tip=(cols * 0.70, rows * 0.66), tail=(cols * 0.86, rows * 0.50),
                             label="left heart border"))
    vp.add_measurement(Note(anchor=(cols * 0.08, rows * 0.12), label="Compare with the prior PA film"))
    window.workspace.set_tool("arrow")  # the toolbar shows the Arrow tool as the one in use
    shot(window, "viewer_arrow_note.png")

    vp.setFocus()
    QTest.keyClick(vp, Qt.Key.Key_K)  # Of Interest
    if not vp.is_of_interest():
        raise SystemExit("K did not mark the image Of Interest")
    shot(window, "viewer_of_interest.png")

    dialog = window.show_image_cache()
    if dialog is None:
        raise SystemExit("Tools > Local image cache did not open (no archive set?)")
    while dialog.busy():
        wait(100)
    shot(dialog, "image_cache_dialog.png")
    dialog.done(0)
    while pending_jobs():
        wait(100)
    window.close()
    app.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
