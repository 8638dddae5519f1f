"""Screenshots of the viewer with the bundled demo study (PNG files in a pytest tmp dir).

Set RADSTATION_SCREENSHOT_DIR to also write them there (docs/screenshots is refreshed this way after
a person has looked at them)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from viewer.measure.store import InMemoryMeasurementStore
from viewer.models.tools import Tool

DEMO = Path(__file__).resolve().parents[3] / "resources" / "demo"


def _studies():
    if not (DEMO / "DICOMDIR").exists():
        pytest.skip("resources/demo is not built yet")
    from viewer.demo import demo_studies

    return demo_studies(DEMO)


def _keep(path: Path) -> None:
    target = os.environ.get("RADSTATION_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def _array(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()  # img's buffer dies here


def test_workspace_screenshot_with_demo_study(qtbot, tmp_path):
    from tests.support.input_events import drag
    from viewer.widgets.workspace import ViewerWorkspace

    studies = _studies()
    dx = next(s for s in studies if s.series[0].modality == "DX" and "CARDIO" in s.patient_name)
    ws = ViewerWorkspace()
    qtbot.addWidget(ws)
    ws.resize(1280, 900)
    ws.show()
    qtbot.waitExposed(ws)
    ws.open_study(dx, InMemoryMeasurementStore())
    vp = ws.active_viewport()
    img = ws.current_image()
    assert img.modality == "DX"
    vp.set_tool(Tool.DISTANCE)
    w, h = vp.width(), vp.height()
    a = vp.state.image_to_widget(img.columns * 0.30, img.rows * 0.62, w, h)
    b = vp.state.image_to_widget(img.columns * 0.72, img.rows * 0.62, w, h)
    drag(vp, a, b)
    assert "mm" in vp.measurement_labels()[0]
    vp.set_tool(Tool.ELLIPSE)
    a = vp.state.image_to_widget(img.columns * 0.22, img.rows * 0.30, w, h)
    b = vp.state.image_to_widget(img.columns * 0.36, img.rows * 0.44, w, h)
    drag(vp, a, b)
    assert "mean" in vp.measurement_labels()[1]
    vp.select_measurement(None)
    vp.set_tool(Tool.WINDOW)
    qtbot.waitUntil(ws.thumbnails.icons_ready, timeout=10000)
    out = tmp_path / "viewer_workspace.png"
    shot = ws.grab().toImage()
    assert shot.save(str(out))
    arr = _array(vp.grab().toImage()).astype(np.float32)
    centre = arr[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    assert centre.std() > 20 and 30 < centre.mean() < 220  # a windowed radiograph, not blank or saturated
    _keep(out)


def test_mpr_screenshot_with_demo_ct(qtbot, tmp_path):
    from viewer.widgets.mpr_view import MprView

    ct = next(s for s in _studies() if s.series[0].modality == "CT")
    mpr = MprView()
    qtbot.addWidget(mpr)
    mpr.resize(1200, 800)
    mpr.show()
    qtbot.waitExposed(mpr)
    with qtbot.waitSignal(mpr.volumeLoaded, timeout=20000):
        mpr.load_series(ct.series[0])
    z, y, x = mpr.crosshair()
    mpr.set_crosshair((z, y, x - 10))
    out = tmp_path / "viewer_mpr.png"
    assert mpr.grab().toImage().save(str(out))
    for pane in mpr.panes.values():
        arr = _array(pane.grab().toImage()).astype(np.float32)
        assert arr.std() > 15
    _keep(out)


@pytest.mark.xvfb
def test_3d_screenshot_with_demo_ct(xvfb_display, tmp_path):
    from test_volume_render_view import run_scene

    ct = next(s for s in _studies() if s.series[0].modality == "CT")
    out = tmp_path / "viewer_3d.png"
    facts = run_scene(xvfb_display, out, "560", str(Path(ct.series[0].paths[0]).parent))
    assert facts["presets"]["CT bone"]["lit_fraction"] > 0.03
    _keep(out)
