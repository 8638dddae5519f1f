"""Regenerate the main-window screenshots in docs/screenshots (offscreen Qt, temporary data dir).

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/scripts/main_window_screenshots.py [--out DIR]

Opens the demo study, logs in a demo radiologist, drafts the report with the shipped engine weights
(real inference in the worker process) and saves the window: worklist, viewer + drafted report, explain.
"""

from __future__ import annotations

import sys

from demo_window import close, draft_demo, open_window, out_dir, wait


def main() -> int:
    out = out_dir(__doc__.splitlines()[0])
    app, window = open_window()
    window.worklist.refresh()
    window.tabs.setCurrentWidget(window.worklist)
    wait(500)
    window.grab().save(str(out / "main_worklist.png"))

    draft_demo(window, 1, settle_ms=1500)  # the study with a finding
    window.grab().save(str(out / "main_window.png"))
    window.side_tabs.setCurrentWidget(window.ai_panel)
    wait(300)
    window.grab().save(str(out / "main_ai_panel.png"))
    print(out / "main_window.png")
    close(app, window)
    return 0


if __name__ == "__main__":
    sys.exit(main())
