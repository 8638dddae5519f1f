"""Run under Xvfb by test_volume_render_view.py (VTK's Qt widget cannot render offscreen):
renders a volume in VolumeRenderWindow, saves a PNG and prints JSON facts about the picture.

usage: python vtk_scene.py OUT.png SIZE [SERIES_DIR]
Without SERIES_DIR a synthetic CT phantom in a bare VolumeRenderWindow; with it, the series is
opened in a ViewerWorkspace and 3D is started with ViewerWorkspace.show_3d.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from viewer.io.refs import SeriesRef, StudyRef
from viewer.volume.loader import VolumeResult
from viewer.widgets import volume_render_view
from viewer.widgets.volume_render_view import VolumeRenderWindow
from viewer.widgets.workspace import ViewerWorkspace


def phantom() -> VolumeResult:
    """A 'bone' sphere and a 'soft tissue' box in air, 48^3 voxels, 1 mm."""
    z, y, x = np.mgrid[:48, :48, :48]
    vol = np.full((48, 48, 48), -1000, dtype=np.int16)
    vol[8:40, 10:38, 6:42] = 40
    vol[(z - 24) ** 2 + (y - 24) ** 2 + (x - 24) ** 2 < 12**2] = 1200
    import SimpleITK as sitk

    return VolumeResult(image=sitk.GetImageFromArray(vol), array=vol, positions=np.zeros((48, 3)), paths=[],
                        spacing_zyx=(1.0, 1.0, 1.0), modality="CT", units="HU")


def main() -> int:
    out = Path(sys.argv[1])
    if os.environ.get("SCENE_MAX_VOXELS"):  # a smaller software-OpenGL budget, so the phantom gets reduced
        volume_render_view.SOFTWARE_MAX_VOXELS = int(os.environ["SCENE_MAX_VOXELS"])
    app = QApplication.instance() or QApplication([])
    size = int(sys.argv[2])
    if len(sys.argv) > 3:
        # the real path: a workspace with the series in its active viewport, 3D from the toolbar action
        folder = Path(sys.argv[3])
        paths = tuple(sorted(p for p in folder.iterdir() if p.is_file()))
        ws = ViewerWorkspace()
        ws.resize(800, 600)
        ws.show()
        ws.open_study(StudyRef("demo", series=(SeriesRef("demo", "CT", "demo", 1, paths),)))
        app.processEvents()
        win = ws.show_3d()
        if win is None:
            print(json.dumps({"error": ws.banner_text()}))
            return 1
        win.resize(size, size)
        done: list = []
        win.volumeLoaded.connect(done.append)
        win.loadFailed.connect(done.append)
        deadline = time.monotonic() + 60
        while not done and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        if not done or isinstance(done[0], str):
            print(json.dumps({"error": str(done[0]) if done else "timeout"}))
            return 1
    else:
        win = VolumeRenderWindow()
        win.resize(size, size)
        win.show()
        app.processEvents()
        win.set_volume_result(phantom())
    facts = {"presets": {}, "renderer": win.view.renderer_name(), "render_mode": win.view.render_mode(),
             "status": win.status.text(), "shown_shape": list(win.view._array.shape)}
    for name in ("MIP", "CT bone"):
        win.presets.setCurrentText(name)  # renders
        app.processEvents()
        arr = win.view.grab_array(render=False)
        lit = arr.max(axis=2) > 20
        facts["presets"][name] = {"lit_fraction": float(lit.mean()), "mean": float(arr.mean())}
    facts["shape"] = list(arr.shape)
    # a picture of the whole window: toolbar + render, composed from Qt and VTK
    top = win.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    h, w = arr.shape[:2]
    render = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGB888).copy()
    from PySide6.QtGui import QPainter

    p = QPainter(top)
    p.drawImage(win.view.mapTo(win, win.view.rect().topLeft()), render)
    p.end()
    top.save(str(out))
    print(json.dumps(facts))
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
