"""Reading tools driven by keys and clicks: modality-aware presets, interpolation, measurement list (rename,
move, delete, readable labels), layouts up to 4x4, hanging protocols and remapped keys."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QLineEdit

from tests.support.widget_samples import STUDY_UID, write_ct_series
from viewer.demo import demo_study_paths
from viewer.hanging import assign, choose, load_protocols
from viewer.io.image import load_image
from viewer.io.refs import SeriesRef, StudyRef
from viewer.measure.shapes import Distance
from viewer.models import tools
from viewer.widgets.viewport import Viewport
from viewer.widgets.workspace import ViewerWorkspace


def _radiograph_path():
    return next(p for p in demo_study_paths() if pydicom.dcmread(p, stop_before_pixels=True).Modality in ("DX", "CR"))


def _viewport(qtbot, image) -> Viewport:
    vp = Viewport()
    qtbot.addWidget(vp)
    vp.resize(400, 400)
    vp.show()
    vp.set_image(image)
    vp.setFocus()
    return vp


def test_presets_follow_the_modality(qtbot, ct_series):
    cxr = _viewport(qtbot, load_image(_radiograph_path()))
    qtbot.keyClick(cxr, Qt.Key.Key_2)  # on a radiograph: a contrast preset from its own histogram
    window = cxr.current_window()
    values = cxr.current_image().modality_frame(0)
    assert window.name == "full range" and window.lower <= float(values.min()) + 1
    assert window.upper >= float(values.max()) - 1  # not the lung HU window that made it white
    qtbot.keyClick(cxr, Qt.Key.Key_8)
    assert cxr.current_window().name == "full range" and "No preset on key 8" in cxr.notice()
    assert set(cxr.presets()) == {2, 3, 4, 5}
    ct = Viewport()
    qtbot.addWidget(ct)
    ct.resize(300, 300)
    ct.set_series(ct_series)
    ct.setFocus()
    qtbot.keyClick(ct, Qt.Key.Key_2)
    assert ct.current_window().name == "lung"


def test_interpolation_toggle_and_reset_restores_window_and_view(qtbot):
    vp = _viewport(qtbot, load_image(_radiograph_path()))
    assert vp.smooth()
    qtbot.keyClick(vp, Qt.Key.Key_I, Qt.KeyboardModifier.ShiftModifier)
    assert not vp.smooth() and "Pixelated" in vp.notice()
    qtbot.keyClick(vp, Qt.Key.Key_3)
    qtbot.keyClick(vp, Qt.Key.Key_H)
    assert vp.state.window is not None and vp.state.flip_h
    qtbot.keyClick(vp, Qt.Key.Key_R)  # R resets the whole view, W/L included
    assert vp.state.window is None and not vp.state.flip_h


def test_measurement_list_renames_moves_and_deletes(qtbot, ct_series):
    ws = ViewerWorkspace()
    qtbot.addWidget(ws)
    ws.resize(1000, 700)
    ws.show()
    ws.load_series(ct_series)
    vp = ws.active_viewport()
    vp.add_measurement(Distance(p0=(10, 10), p1=(40, 10)))
    vp.add_measurement(Distance(p0=(12, 12), p1=(42, 12)))  # right next to the first
    ws.toggle_measurements(True)
    table = ws.measurement_list.table
    assert table.rowCount() == 2 and "mm" in table.item(0, 1).text()
    rects = vp.label_rects()
    a, b = rects[0], rects[1]
    assert not a.intersects(b)  # labels of close shapes never overlap
    cell = table.visualItemRect(table.item(0, 0)).center()
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=cell)
    qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=cell)  # double-click edits the name
    editor = table.viewport().findChild(QLineEdit)
    assert editor is not None
    editor.selectAll()
    qtbot.keyClicks(editor, "RUL nodule")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: vp.measurements()[0].label == "RUL nodule", timeout=5000)  # committed on the next loop
    assert vp.measurement_labels()[0].startswith("RUL nodule\n")
    # move: drag the selected line with the W/L tool
    start = QPoint(*map(round, vp._to_widget((25, 10))))
    end = start + QPoint(0, 40)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(vp, end)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=end)
    moved = vp.measurements()[0]
    assert moved.p0[1] > 12 and abs((moved.p1[0] - moved.p0[0]) - 30) < 1e-6
    table.selectRow(1)
    table.setFocus()
    qtbot.keyClick(ws.measurement_list, Qt.Key.Key_Delete)
    assert len(vp.measurements()) == 1 and table.rowCount() == 1


def test_layouts_go_up_to_4x4(qtbot, study):
    ws = ViewerWorkspace()
    qtbot.addWidget(ws)
    ws.resize(1200, 900)
    ws.show()
    ws.open_study(study)
    ws.set_layout("4x4")
    assert ws.layout_view.grid() == (4, 4) and len(ws.viewports()) == 16
    assert sum(vp.series() is not None for vp in ws.viewports()) == 3  # every series hung once
    ws.set_tool("distance")
    assert all(vp.tool().value == "distance" for vp in ws.viewports())
    ws.set_layout("1x1")
    assert len(ws.viewports()) == 1


def _cr_series(path, uid: str, desc: str) -> SeriesRef:
    return SeriesRef(uid, "DX", desc, 1, (path,))


def test_hanging_protocols_place_prior_and_lateral():
    path = _radiograph_path()
    current = StudyRef(STUDY_UID, "Doe^Jane", "P1", "20250102", "A1", "CHEST PA AND LATERAL",
                       (_cr_series(path, "1.1", "LATERAL"), _cr_series(path, "1.2", "PA")))
    prior = StudyRef("2.2", "Doe^Jane", "P1", "20240101", "A0", "CHEST PA", (_cr_series(path, "2.1", "PA"),))
    protocols, problems = load_protocols([{"name": "broken", "layout": "9x9"}])
    assert problems and "9x9" in problems[0]
    with_prior = choose(protocols, current, "CHEST", 1)
    assert with_prior.name == "Chest radiograph with prior" and with_prior.layout == "1x2"
    assert [s.series_uid for s in assign(with_prior, current, [prior])] == ["1.2", "2.1"]
    alone = choose(protocols, current, "CHEST", 0)
    assert alone.name == "Chest radiograph PA + lateral"
    assert [s.series_uid for s in assign(alone, current, [])] == ["1.2", "1.1"]


def test_remapped_viewer_key(qtbot, ct_series):
    vp = Viewport()
    qtbot.addWidget(vp)
    vp.resize(300, 300)
    vp.set_series(ct_series)
    vp.setFocus()
    try:
        assert tools.set_key_overrides({"invert": "Shift+V"}) == []
        qtbot.keyClick(vp, Qt.Key.Key_I)
        assert not vp.state.invert  # the old key no longer inverts
        qtbot.keyClick(vp, Qt.Key.Key_V, Qt.KeyboardModifier.ShiftModifier)
        assert vp.state.invert
        assert tools.set_key_overrides({"nonsense": "X"}) == ["unknown viewer command 'nonsense'"]
    finally:
        tools.set_key_overrides({})
    assert tools.key_for("invert") == "I"


@pytest.mark.parametrize("layout", ["1x3", "2x3", "3x4"])
def test_every_layout_shows_its_viewports(qtbot, tmp_path, layout):
    ws = ViewerWorkspace()
    qtbot.addWidget(ws)
    ws.open_study(StudyRef(STUDY_UID, series=(write_ct_series(tmp_path / "ct"),)))
    ws.set_layout(layout)
    rows, cols = map(int, layout.split("x"))
    assert len(ws.viewports()) == rows * cols and np.all([not vp.isHidden() for vp in ws.viewports()])
    # background work (icons, GSPS/KOS read) finished before the widget goes: three full runs crashed
    # (SIGSEGV at teardown) around here while it was still arriving
    qtbot.waitUntil(lambda: ws.thumbnails.icons_ready() and ws.study_objects_ready(), timeout=20000)


def test_synthetic_series_sit_in_their_own_group_and_are_never_hung(qtbot):
    """A saved what-if series is listed after a labelled SYNTHETIC header, cannot be hung beside the
    acquired images by a protocol, and a click on the header selects nothing."""
    from viewer.widgets.thumbnails import UID_ROLE, SeriesThumbnails

    path = _radiograph_path()
    synthetic = SeriesRef("9.9", "OT", "SYNTHETIC what-if (no effusion) - NOT FOR DIAGNOSIS", 900, (path,))
    study = StudyRef(STUDY_UID, "Doe^Jane", "P1", "20250102", "A1", "CHEST PA AND LATERAL",
                     (synthetic, _cr_series(path, "1.2", "PA"), _cr_series(path, "1.1", "LATERAL")))
    strip = SeriesThumbnails()
    qtbot.addWidget(strip)
    strip.show()
    clicked: list = []
    strip.seriesActivated.connect(clicked.append)
    strip.set_study(study)
    qtbot.waitUntil(strip.icons_ready, timeout=20000)
    texts = [strip.item(i).text() for i in range(strip.count())]
    header = next(i for i, t in enumerate(texts) if t.startswith("SYNTHETIC"))
    assert [strip.item(i).data(UID_ROLE) for i in range(header)] == ["1.2", "1.1"]  # acquired first
    assert strip.item(header + 1).data(UID_ROLE) == "9.9" and header + 2 == strip.count()
    assert "not for diagnosis" in texts[header].lower()
    assert strip.item(header).flags() == Qt.ItemFlag.NoItemFlags
    rect = strip.visualItemRect(strip.item(header))
    qtbot.mouseClick(strip.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert clicked == [] and strip.selectedItems() == []
    qtbot.mouseClick(strip.viewport(), Qt.MouseButton.LeftButton,
                     pos=strip.visualItemRect(strip.item(header + 1)).center())
    assert [s.series_uid for s in clicked] == ["9.9"]  # still viewable on purpose, one click away

    protocols, _ = load_protocols()
    protocol = choose(protocols, study, "CHEST", 0)
    assert protocol.name == "Chest radiograph PA + lateral"
    assert "9.9" not in [s.series_uid for s in assign(protocol, study, []) if s is not None]
    only_synthetic = StudyRef(STUDY_UID, series=(synthetic,))
    assert [s for s in assign(choose(protocols, only_synthetic, "", 0), only_synthetic, []) if s] == []
