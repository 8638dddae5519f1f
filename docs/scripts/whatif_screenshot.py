"""Regenerate docs/screenshots/whatif.png: the demo nodule study, "remove the nodule", computed by the
shipped engine weights in the engine worker process (the same path as the app), two variants.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/scripts/whatif_screenshot.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "screenshots" / "whatif.png"
NODULE = ROOT / "resources/demo/PT000002/ST000000/SE000000/IM000000"
REPORT = ("The heart is normal in size. There is a right upper lobe nodule. No pleural effusion.\n\n"
          "IMPRESSION: Right upper lobe nodule.")


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pydicom
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.model_runner import JOB_MODULES, ClientRunner
    from app.widgets.whatif_view import WhatIfView
    from engines.worker.client import WorkerClient

    app = QApplication.instance() or QApplication(sys.argv)
    worker = WorkerClient("diffusion", {"device": "cpu"}, jobs=JOB_MODULES)
    runner = ClientRunner(worker)
    view = WhatIfView(runner)
    view.resize(1500, 820)
    view.show()
    source = pydicom.dcmread(NODULE)
    view.set_case(source.pixel_array, REPORT, source)
    view.instruction.setText("remove the nodule")
    # The engine checks the edit against its own reading first and asks before running when they disagree
    # (a modal question that would block this script): answer it as the radiologist would, and say so.
    def confirm(warnings: list[str]) -> bool:
        print("the engine warned, confirmed for the screenshot:", " ".join(warnings), file=sys.stderr)
        return True

    view.confirm_edit = confirm
    loop = QEventLoop()
    outcome: list[str] = []
    view.resultReady.connect(lambda _r: (outcome.append("ok"), loop.quit()))
    view.failed.connect(lambda m: (outcome.append(m), loop.quit()))
    QTimer.singleShot(300_000, loop.quit)
    try:
        if not view.start():
            print(f"could not start: {view.status.text()}", file=sys.stderr)
            return 1
        loop.exec()
        if outcome != ["ok"]:
            print(f"what-if failed: {outcome or 'timeout'}", file=sys.stderr)
            return 1
        for _ in range(5):
            app.processEvents()
        view.grab().save(str(OUT))
        view.shutdown()
    finally:
        worker.close()
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
