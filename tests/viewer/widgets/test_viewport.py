"""The 2D Viewport driven with real Qt events, offscreen."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from tests.support.input_events import click, drag, move, wheel
from viewer.imaging.window import PRESET_KEYS, PRESETS
from viewer.io.refs import SeriesRef
from viewer.measure.shapes import Note
from viewer.measure.store import InMemoryMeasurementStore
from viewer.models.overlay_text import ANONYMISED
from viewer.models.tools import Tool
from viewer.widgets.viewport import ARRIVING, Viewport


def _pixels(vp: Viewport) -> np.ndarray:
    img = vp.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


@pytest.fixture
def vp(qtbot, ct_series):
    w = Viewport(measurement_store=InMemoryMeasurementStore())
    qtbot.addWidget(w)
    w.resize(320, 256)  # 4x the 80x64 image: fit zoom 4.0
    w.show()
    qtbot.waitExposed(w)
    w.set_series(ct_series)
    w.grab()  # the first image of a series is read on the decode queue: wait for it
    qtbot.waitUntil(lambda: not w.is_loading(), timeout=30_000)
    return w


def _bone_at(vp: Viewport, arr: np.ndarray, ix: float, iy: float) -> int:
    wx, wy = vp.state.image_to_widget(ix, iy, vp.width(), vp.height())
    return int(arr[int(wy), int(wx)].mean())


def test_shows_first_image_windowed_from_header(vp):
    img = vp.current_image()
    assert img is not None and img.modality == "CT"
    assert vp.state.slice_count == 5 and vp.state.zoom_percent(vp.width(), vp.height()) == 400
    arr = _pixels(vp)
    # W400/L40: bone (1000 HU) white, air black, soft tissue (40 HU) mid-grey
    assert _bone_at(vp, arr, 15, 15) > 240
    assert _bone_at(vp, arr, 60, 40) in range(110, 150)
    assert _bone_at(vp, arr, 2, 30) < 15


def test_preset_keys_and_header_default(vp, qtbot):
    key_for_lung = next(k for k, v in PRESET_KEYS.items() if v == "lung")
    qtbot.keyClick(vp, str(key_for_lung))
    assert vp.current_window() == PRESETS["lung"]
    assert "lung" in vp.overlay_lines()["bottom_right"][0]
    qtbot.keyClick(vp, "R")
    assert vp.state.window is None
    assert vp.current_window().center == 40 and vp.current_window().width == 400
    qtbot.keyClick(vp, "4")
    qtbot.keyClick(vp, "0")
    assert vp.state.window is None


def test_right_drag_changes_window_and_pixels(vp):
    before = vp.current_window()
    px_before = _pixels(vp)
    drag(vp, (100, 100), (180, 60), button=Qt.MouseButton.RightButton)
    after = vp.current_window()
    assert after.width > before.width  # right = wider
    assert after.center < before.center  # up = lower center
    assert not np.array_equal(px_before, _pixels(vp))
    assert f"W {after.width:.0f}" in vp.overlay_lines()["bottom_right"][0]


def test_wheel_and_keys_scroll_the_series(vp, qtbot):
    wheel(vp, (100, 100), -120)  # towards the user: next image
    assert vp.state.slice_index == 1
    assert vp.current_image().dataset.InstanceNumber == 2
    qtbot.keyClick(vp, Qt.Key.Key_Down)
    qtbot.keyClick(vp, Qt.Key.Key_Down)
    assert vp.state.slice_index == 3
    qtbot.keyClick(vp, Qt.Key.Key_PageDown)
    assert vp.state.slice_index == 4  # clamped at the last image
    qtbot.keyClick(vp, Qt.Key.Key_Up)
    assert "Im 4/5" in vp.overlay_lines()["bottom_left"]
    wheel(vp, (100, 100), 360)
    assert vp.state.slice_index == 0


def test_ctrl_wheel_zooms_at_cursor_and_fit_resets(vp, qtbot):
    anchor_img = vp.state.widget_to_image(50, 60, vp.width(), vp.height())
    before = _pixels(vp)
    wheel(vp, (50, 60), 240, Qt.KeyboardModifier.ControlModifier)
    assert vp.state.zoom > 4.0 and not vp.state.fit
    after = _pixels(vp)
    # the bone block's right edge (image x = 26) moved right on screen, away from the anchor
    edge_after = vp.state.image_to_widget(26, 15, vp.width(), vp.height())[0]
    assert edge_after > 26 * 4 + 1
    assert after[60, 106:110].mean() > 240 and before[60, 106:110].mean() < 240
    assert vp.state.widget_to_image(50, 60, vp.width(), vp.height()) == pytest.approx(anchor_img)
    qtbot.keyClick(vp, "F")
    assert vp.state.fit
    qtbot.keyClick(vp, "1", Qt.KeyboardModifier.ControlModifier)
    assert vp.state.zoom_percent(vp.width(), vp.height()) == 100


def test_flip_rotate_invert_change_state_and_pixels(vp, qtbot):
    arr0 = _pixels(vp)
    # bone block is in the image's top-left quadrant: image (18, 15) is widget (72, 60) upright
    assert arr0[58:62, 70:74].mean() > 240 and arr0[58:62, 246:250].mean() < 240
    qtbot.keyClick(vp, "H")
    assert vp.state.flip_h
    arr1 = _pixels(vp)
    assert arr1[58:62, 246:250].mean() > 240 and arr1[58:62, 70:74].mean() < 240
    qtbot.keyClick(vp, "H")
    qtbot.keyClick(vp, "T")
    assert vp.state.rotation == 1
    arr2 = _pixels(vp)
    wx, wy = vp.state.image_to_widget(15, 15, vp.width(), vp.height())
    assert wx > vp.width() / 2 and wy < vp.height() / 2  # clockwise: top-left goes top-right
    assert arr2[int(wy), int(wx)].mean() > 240
    qtbot.keyClick(vp, "I")
    assert vp.state.invert
    assert _pixels(vp)[int(wy), int(wx)].mean() < 15
    qtbot.keyClick(vp, "R", Qt.KeyboardModifier.ControlModifier)
    assert (vp.state.rotation, vp.state.invert, vp.state.flip_h) == (0, False, False)


def test_pan_tool_and_middle_drag_move_the_image(vp):
    vp.set_tool(Tool.PAN)
    drag(vp, (100, 100), (130, 110))
    assert (vp.state.pan_x, vp.state.pan_y) == pytest.approx((30, 10))
    drag(vp, (100, 100), (90, 100), button=Qt.MouseButton.MiddleButton)
    assert vp.state.pan_x == pytest.approx(20)


def test_distance_measurement_label_persist_restore_delete(vp, ct_series, tmp_path):
    from tests.support.widget_samples import write_ct_series

    store = vp.measurements_model.store
    vp.set_tool(Tool.DISTANCE)
    a = vp.state.image_to_widget(10, 10, vp.width(), vp.height())
    b = vp.state.image_to_widget(50, 10, vp.width(), vp.height())
    drag(vp, a, b)
    assert len(vp.measurements()) == 1
    assert vp.measurement_labels() == ["20.0 mm"]  # 40 px x 0.5 mm
    sop = vp.current_image().sop_instance_uid
    assert store.load(sop)[0]["kind"] == "distance"
    # another series, then back: the measurement comes back from the store
    vp.set_series(write_ct_series(tmp_path / "other", n=2))
    assert vp.measurements() == []
    vp.set_series(ct_series)
    assert vp.measurement_labels() == ["20.0 mm"]
    # select by clicking on the line, delete with the Delete key
    vp.set_tool(Tool.WINDOW)
    mid = vp.state.image_to_widget(30, 10, vp.width(), vp.height())
    click(vp, mid)
    assert vp.selected_measurement() == 0
    vp.run_command("delete_measurement")
    assert vp.measurements() == [] and store.load(sop) == []


def test_roi_reports_hu_statistics(vp):
    vp.set_tool(Tool.RECT)
    a = vp.state.image_to_widget(11, 9, vp.width(), vp.height())
    b = vp.state.image_to_widget(25, 20, vp.width(), vp.height())
    drag(vp, a, b)
    label = vp.measurement_labels()[0]
    assert "mean 1000.0 HU" in label and "SD 0.0" in label and "mm\u00b2" in label


def test_angle_is_drawn_with_drag_then_click(vp):
    vp.set_tool(Tool.ANGLE)
    p0 = vp.state.image_to_widget(40, 10, vp.width(), vp.height())
    vertex = vp.state.image_to_widget(10, 10, vp.width(), vp.height())
    p1 = vp.state.image_to_widget(10, 40, vp.width(), vp.height())
    drag(vp, p0, vertex)
    move(vp, p1)
    click(vp, p1)
    assert vp.measurement_labels() == ["90.0\u00b0"]


def test_unknown_spacing_says_so(qtbot, us_series):
    w = Viewport(measurement_store=InMemoryMeasurementStore())
    qtbot.addWidget(w)
    w.resize(200, 240)
    w.show()
    w.set_series(us_series)
    w.set_tool(Tool.DISTANCE)
    drag(w, w.state.image_to_widget(5, 5, 200, 240), w.state.image_to_widget(35, 5, 200, 240))
    assert "px" in w.measurement_labels()[0] and "spacing unknown" in w.measurement_labels()[0]
    assert "spacing unknown" in w.overlay_lines()["bottom_right"]


def test_multiframe_scrolls_frames_and_cine_plays(qtbot, us_series):
    w = Viewport()
    qtbot.addWidget(w)
    w.resize(200, 240)
    w.show()
    w.set_series(us_series)
    assert (w.state.frame_count, w.state.frame_index) == (3, 0)
    qtbot.keyClick(w, Qt.Key.Key_Right)
    assert w.state.frame_index == 1 and "Fr 2/3" in w.overlay_lines()["bottom_left"]
    w.set_cine_fps(50)
    qtbot.keyClick(w, Qt.Key.Key_Space)
    assert w.is_playing()
    qtbot.waitUntil(lambda: w.state.frame_index == 0, timeout=2000)  # wrapped around
    qtbot.keyClick(w, Qt.Key.Key_Space)
    assert not w.is_playing()
    with pytest.raises(ValueError):
        w.set_cine_fps(0)


def test_anonymise_hides_identifiers(vp, qtbot):
    text = "\n".join(sum(vp.overlay_lines().values(), []))
    assert "Doe Jane" in text and "PID-4711" in text and "ACC99" in text
    qtbot.keyClick(vp, "A")
    lines = vp.overlay_lines()
    text = "\n".join(sum(lines.values(), []))
    assert "Doe" not in text and "PID-4711" not in text and "ACC99" not in text and "1960" not in text
    assert lines["top_left"] == [ANONYMISED]
    assert "CT CHEST" in text  # study description still shown


def test_heat_overlay_follows_view_and_is_not_burned_in(vp):
    before = _pixels(vp)
    frame_before = vp.current_image().frame(0).copy()
    heat = np.zeros((8, 10), dtype=np.float32)
    heat[4:, 5:] = 1.0  # bottom-right quadrant hot
    vp.set_overlay(heat, opacity=0.6, colormap="jet", threshold=0.5)
    after = _pixels(vp)
    br = vp.state.image_to_widget(70, 55, vp.width(), vp.height())
    tl = vp.state.image_to_widget(5, 5, vp.width(), vp.height())
    assert not np.array_equal(after[int(br[1]), int(br[0])], before[int(br[1]), int(br[0])])
    assert np.array_equal(after[int(tl[1]), int(tl[0])], before[int(tl[1]), int(tl[0])])
    vp.flip_horizontal()
    br2 = vp.state.image_to_widget(70, 55, vp.width(), vp.height())
    assert br2[0] < vp.width() / 2  # the hot quadrant moved with the image
    assert np.array_equal(vp.current_image().frame(0), frame_before)
    vp.set_overlay(None)
    vp.flip_horizontal()
    assert np.array_equal(_pixels(vp), before)


def test_a_file_not_here_yet_says_arriving_and_shows_when_it_arrives(qtbot, tmp_path, ct_series):
    """A study fetched from the archive opens on its first image: the others are "arriving", not errors,
    and show once their file is placed; after the fetch a file still missing is named."""
    import shutil

    later = tmp_path / "later.dcm"
    series = SeriesRef("1.2.3", "CT", "arriving", 1, (ct_series.paths[0], later))
    w = Viewport()
    qtbot.addWidget(w)
    w.show()
    w.set_series(series)
    w.step(1)
    assert w.current_image() is None and "later.dcm: not on this workstation" in w.message()
    w.set_arriving(True)
    assert w.message() == ARRIVING
    assert not w.refresh_arrived()  # still not here
    shutil.copy(ct_series.paths[1], later)
    assert w.refresh_arrived() and w.current_image() is not None and w.message() == ""
    later.unlink()
    w.set_arriving(False)
    w.step(-1)
    w.step(1)  # read before it went: kept in the series' cache
    assert w.current_image() is not None
    w.grab()


def test_unreadable_file_shows_message_not_crash(qtbot, tmp_path, ct_series):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom at all")
    series = SeriesRef("1.2.3", "CT", "mixed", 1, (ct_series.paths[0], bad))
    w = Viewport()
    qtbot.addWidget(w)
    w.show()
    w.set_series(series)
    assert w.current_image() is not None
    w.step(1)
    assert w.current_image() is None and "Cannot display" in w.message() and "bad.dcm" in w.message()
    w.grab()  # paints the message
    w.step(-1)
    assert w.current_image() is not None


class _BrokenStore:
    def load(self, sop_instance_uid):
        return []

    def save(self, sop_instance_uid, measurements):
        raise OSError("database is locked")


def test_failing_store_keeps_the_measurement_and_says_so(qtbot, ct_series):
    w = Viewport(measurement_store=_BrokenStore())
    qtbot.addWidget(w)
    w.resize(320, 256)
    w.show()
    w.set_series(ct_series)
    qtbot.waitUntil(lambda: not w.measurements_model.reading, timeout=10000)  # read off the GUI thread
    w.set_tool(Tool.DISTANCE)
    drag(w, w.state.image_to_widget(10, 10, 320, 256), w.state.image_to_widget(30, 10, 320, 256))
    assert w.measurement_labels() == ["10.0 mm"]
    assert "NOT saved" in w.measurements_model.error and "database is locked" in w.measurements_model.error
    w.grab()


def test_a_closed_viewport_is_freed_at_once_not_by_the_cycle_collector(qapp):
    """The viewport listens to its measurement model without a reference cycle: a cycle would leave the widget to
    the cycle collector, which may run on a decode worker thread, and a QWidget deleted there crashes."""
    gc.disable()
    try:
        w = Viewport()
        w.add_measurement(Note(anchor=(1.0, 1.0), label="x"))  # the model has told its listener
        ref = weakref.ref(w)
        del w
        assert ref() is None
    finally:
        gc.enable()


def test_measurement_on_a_rotated_flipped_view_is_in_image_pixels(vp):
    vp.rotate(True)
    vp.flip_vertical()
    vp.zoom_by(1.5, (30, 40))
    vp.set_tool(Tool.RECT)
    a = vp.state.image_to_widget(11, 9, vp.width(), vp.height())
    b = vp.state.image_to_widget(25, 20, vp.width(), vp.height())
    drag(vp, a, b)
    m = vp.measurements()[0]
    assert sorted(x for x, _ in m.points()) == pytest.approx([11, 25], abs=0.05)
    assert sorted(y for _, y in m.points()) == pytest.approx([9, 20], abs=0.05)
    assert "mean 1000.0 HU" in vp.measurement_labels()[0]


def _rgb_image(photometric: str = "RGB"):
    from pydicom.dataset import Dataset

    from viewer.io.image import DicomImage

    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3.4"
    ds.Modality = "OT"
    ds.Rows, ds.Columns = 20, 30
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    arr = np.zeros((20, 30, 3), dtype=np.uint8)
    arr[..., 0] = 220  # red
    ds.PixelData = arr.tobytes()
    return DicomImage.from_dataset(ds)


def test_colour_image_is_shown_in_colour_and_right_drag_is_harmless(qtbot):
    w = Viewport()
    qtbot.addWidget(w)
    w.resize(300, 200)
    w.show()
    w.set_image(_rgb_image())
    drag(w, (100, 100), (150, 120), button=Qt.MouseButton.RightButton)
    px = _pixels(w)[100, 150]
    assert px[0] > 200 and px[1] < 30 and px[2] < 30
    assert w.current_window() is None


def test_orientation_letters_follow_the_view(vp):
    assert vp.orientation_labels() == {"right": "L", "left": "R", "bottom": "P", "top": "A"}
    vp.flip_horizontal()
    assert vp.orientation_labels()["left"] == "L"


def test_without_a_store_measurements_survive_scrolling_away(qtbot, ct_series):
    w = Viewport()
    qtbot.addWidget(w)
    w.resize(320, 256)
    w.show()
    w.set_series(ct_series)
    w.set_tool(Tool.DISTANCE)
    drag(w, w.state.image_to_widget(10, 10, 320, 256), w.state.image_to_widget(30, 10, 320, 256))
    w.step(1)
    assert w.measurements() == []
    w.step(-1)
    assert w.measurement_labels() == ["10.0 mm"]
