"""The widgets' model modules stay free of Qt, so they can be used and tested without a window."""

from __future__ import annotations

import subprocess
import sys

QT_FREE = (
    "viewer.widgets.view_state",
    "viewer.widgets.overlay_text",
    "viewer.widgets.tag_tree",
    "viewer.widgets.tools",
    "viewer.widgets.measure_tool",
    "viewer.widgets.series_stack",
    "viewer.widgets.volume_presets",
    "viewer.widgets.orientation",
)


def test_model_modules_import_no_qt():
    code = (
        "import sys\n"
        f"for m in {QT_FREE!r}: __import__(m)\n"
        "bad = sorted(k for k in sys.modules if k.startswith(('PySide6', 'shiboken6', 'vtkmodules')))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
