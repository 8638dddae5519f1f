"""The viewer's model modules stay free of Qt, so they can be used and tested without a window."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import viewer.models

QT_FREE = (
    *(f"viewer.models.{m.name}" for m in pkgutil.iter_modules(viewer.models.__path__)),
    "viewer.io.series_stack",
    "viewer.volume.presets",
)


def test_model_modules_import_no_qt():
    assert "viewer.models.view_state" in QT_FREE and "viewer.models.tools" in QT_FREE
    code = (
        "import sys\n"
        f"for m in {QT_FREE!r}: __import__(m)\n"
        "bad = sorted(k for k in sys.modules if k.startswith(('PySide6', 'shiboken6', 'vtkmodules')))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
