"""MPR view: background load, three planes, linked crosshair, shared W/L, warnings banner."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.support.input_events import click, drag
from tests.support.widget_samples import write_ct_series
from viewer.imaging.window import PRESET_KEYS, PRESETS
from viewer.io.refs import SeriesRef
from viewer.widgets.mpr_view import MprView


@pytest.fixture
def mpr(qtbot, tmp_path):
    series = write_ct_series(tmp_path / "vol", n=12, rows=40, cols=48)
    w = MprView()
    qtbot.addWidget(w)
    w.resize(900, 600)
    w.show()
    qtbot.waitExposed(w)
    with qtbot.waitSignal(w.volumeLoaded, timeout=10000):
        w.load_series(series)
    return w


def test_loads_volume_and_shows_three_planes(mpr):
    assert mpr.volume().shape == (12, 40, 48)
    assert mpr.crosshair() == (6, 20, 24)
    assert mpr.slice_index("axial") == 6 and mpr.slice_index("coronal") == 20
    assert mpr.pane_lines("axial")[:2] == ["Axial", "7/12"]
    assert mpr.banner_text() == ""
    img = mpr.panes["coronal"].grab().toImage()
    assert img.width() > 100


def test_click_in_one_plane_moves_the_others(mpr):
    axial = mpr.panes["axial"]
    click(axial, axial.to_widget(10.5, 30.5))  # row 10 (y), column 30 (x)
    z, y, x = mpr.crosshair()
    assert (z, y, x) == (6, 10, 30)
    assert mpr.slice_index("coronal") == 10 and mpr.slice_index("sagittal") == 30
    coronal = mpr.panes["coronal"]
    # coronal rows run head (last slice) to feet: row 0 is slice 11
    click(coronal, coronal.to_widget(0.5, 5.5))
    assert mpr.crosshair() == (11, 10, 5)
    assert mpr.slice_index("axial") == 11
    mpr.step("axial", -3)
    assert mpr.crosshair()[0] == 8


def test_window_is_shared_and_dragged_with_the_right_button(mpr, qtbot):
    before = mpr.window()
    pane = mpr.panes["sagittal"]
    drag(pane, (50, 50), (120, 50), button=Qt.MouseButton.RightButton)
    assert mpr.window().width > before.width
    assert all(mpr.pane_lines(p)[2] == mpr.window().label() for p in mpr.panes)
    lung = next(k for k, v in PRESET_KEYS.items() if v == "lung")
    qtbot.keyClick(mpr, str(lung))
    assert mpr.window() == PRESETS["lung"]


def test_geometry_warnings_show_in_a_banner(qtbot, tmp_path):
    series = write_ct_series(tmp_path / "gap", n=8, rows=16, cols=16)
    holey = SeriesRef(series.series_uid, "CT", "gap", 2, series.paths[:4] + series.paths[6:])
    w = MprView()
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.volumeLoaded, timeout=10000):
        w.load_series(holey)
    assert w.warnings() and "missing" in w.banner_text().lower()


def test_unstackable_files_fail_with_a_message(qtbot, tmp_path):
    bad = tmp_path / "x.dcm"
    bad.write_bytes(b"nope")
    w = MprView()
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.loadFailed, timeout=10000) as sig:
        w.load_series(SeriesRef("1.2", "CT", "", 1, (bad, bad, bad)))
    assert "Cannot build a volume" in sig.args[0]
    assert w.volume() is None


def test_panes_carry_orientation_letters(mpr):
    assert mpr.pane_edges("axial") == {"right": "L", "left": "R", "bottom": "P", "top": "A"}
    assert mpr.pane_edges("coronal") == {"right": "L", "left": "R", "bottom": "F", "top": "H"}
    assert mpr.pane_edges("sagittal") == {"right": "P", "left": "A", "bottom": "F", "top": "H"}


def test_wheel_scrolls_a_plane_and_ctrl_wheel_zooms_it(mpr):
    from tests.support.input_events import wheel

    axial = mpr.panes["axial"]
    wheel(axial, (100, 100), -240)  # two notches towards the user
    assert mpr.crosshair()[0] == 8
    at = axial.to_slice(120, 140)
    wheel(axial, (120, 140), 240, Qt.KeyboardModifier.ControlModifier)
    assert axial.zoom > 1.0
    assert axial.to_slice(120, 140) == pytest.approx(at)
    click(axial, axial.to_widget(3.5, 4.5))  # picking still lands on the right voxel when zoomed
    assert mpr.crosshair()[1:] == (3, 4)
