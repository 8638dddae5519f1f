"""Regenerate docs/screenshots/explain_uncertainty.png with the shipped weights (real inference in the worker
processes): the demo cardiomegaly radiograph drafted, explained, and the image uncertainty map shown in the viewer
with its caption and colour bar.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/scripts/explain_screenshot.py [--out DIR]
"""

from __future__ import annotations

import sys

from demo_window import close, draft_demo, open_window, out_dir, wait, wait_for


def main() -> int:
    out = out_dir(__doc__.splitlines()[0])
    app, window = open_window()
    draft_demo(window, 1)  # the cardiomegaly radiograph
    panel = window.explain_panel
    window.side_tabs.setCurrentWidget(panel)
    wait(500)
    panel.explain()
    wait_for(panel.explanationReady, 900)
    if not panel.uncertainty.isEnabled():
        raise SystemExit("no explanation with an uncertainty map: " + panel.status.text())
    panel.uncertainty.setChecked(True)
    wait(800)
    window.grab().save(str(out / "explain_uncertainty.png"))
    print(out / "explain_uncertainty.png")
    close(app, window)
    return 0


if __name__ == "__main__":
    sys.exit(main())
