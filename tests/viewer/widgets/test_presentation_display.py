"""GSPS and KOS from another viewer, shown in the workspace: the presentation state's window, rotation/flip,
area and annotations applied to the image it references (toggled with Shift+P), key images marked on the
image and counted on the series icons."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from tests.support.presentation_samples import foreign_gsps, foreign_kos, read, save
from viewer.measure.store import InMemoryMeasurementStore  # noqa: E402
from viewer.widgets.workspace import ViewerWorkspace  # noqa: E402


def _rgb(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


def _red(arr: np.ndarray) -> np.ndarray:
    """Pixels of the GSPS layer's red (the CT image is grey; key marks and captions are gold/amber)."""
    r, g, b = (arr[..., i].astype(int) for i in range(3))
    return (r > 180) & (g < 90) & (b < 90)


@pytest.fixture
def shown(qtbot, study, tmp_path):
    first, second = study.series[0], study.series[1]
    a = [read(p) for p in first.paths]
    b = [read(p) for p in second.paths]
    objects = (save(foreign_gsps(a[:2], annotate=a[0]), tmp_path / "pr.dcm"),
               save(foreign_kos(a[2:4]), tmp_path / "ko.dcm"),
               save(foreign_kos(b[:1]), tmp_path / "ko2.dcm"))
    broken = tmp_path / "broken-pr.dcm"
    broken.write_bytes(b"DICM? no")
    ws = ViewerWorkspace()
    qtbot.addWidget(ws)
    ws.resize(900, 600)
    ws.show()
    qtbot.waitExposed(ws)
    ws.open_study(replace(study, object_paths=(*objects, broken)), InMemoryMeasurementStore())
    assert ws.active_viewport().current_image() is not None  # the image shows while the objects are read
    qtbot.waitUntil(ws.study_objects_ready, timeout=5000)
    return ws, a, b


def test_presentation_state_is_applied_to_the_image_it_references(shown, qtbot):
    ws, a, _ = shown
    vp = ws.active_viewport()
    assert vp.current_image().sop_instance_uid == a[0].SOPInstanceUID
    applied = vp.presentation_state()
    assert applied is not None and applied.label == "OTHER VIEWER"
    st = vp.state
    assert (st.window.center, st.window.width) == (100.0, 600.0) and st.rotation == 1 and st.flip_h
    w, h = vp.width(), vp.height()
    # the displayed area (image x 10..50, y 20..60) fills the viewport's shorter side, centred
    assert st.effective_zoom(w, h) == pytest.approx(min(w, h) / 40.0)
    assert st.image_to_widget(30, 40, w, h) == pytest.approx((w / 2, h / 2))
    red = _red(_rgb(vp))
    assert red.sum() > 50
    # the circle's rim point (28, 20) is drawn where the view maps it
    x, y = (round(v) for v in st.image_to_widget(28, 20, w, h))
    assert red[max(0, y - 3): y + 4, max(0, x - 3): x + 4].any()
    # the unreadable object is named, not fatal
    assert "broken-pr.dcm" in ws.banner_text()


def test_shift_p_turns_presentation_states_off_and_on(shown, qtbot):
    ws, a, _ = shown
    vp = ws.active_viewport()
    qtbot.keyClick(vp, Qt.Key.Key_P, Qt.KeyboardModifier.ShiftModifier)
    assert not vp.presentation_enabled() and vp.presentation_state() is None
    assert vp.state.window is None and vp.state.rotation == 0 and vp.state.fit
    assert _red(_rgb(vp)).sum() == 0
    assert vp.tool().value != "pan"  # Shift+P is not the pan tool's P
    qtbot.keyClick(vp, Qt.Key.Key_P, Qt.KeyboardModifier.ShiftModifier)
    assert vp.presentation_enabled() and vp.presentation_state().label == "OTHER VIEWER"
    assert vp.state.window.center == 100.0 and _red(_rgb(vp)).sum() > 50


def test_scrolling_keeps_changes_within_the_state_and_resets_after_it(shown, qtbot):
    ws, a, _ = shown
    vp = ws.active_viewport()
    vp.rotate(True)  # the reader's own change on top of the GSPS
    qtbot.keyClick(vp, Qt.Key.Key_Down)
    assert vp.current_image().sop_instance_uid == a[1].SOPInstanceUID
    assert vp.presentation_state() is not None and vp.state.rotation == 2  # same GSPS: the change is kept
    assert _red(_rgb(vp)).sum() == 0  # its annotations belong to the first image only
    qtbot.keyClick(vp, Qt.Key.Key_Down)
    assert vp.presentation_state() is None and vp.state.window is None and vp.state.rotation == 0


def test_key_images_are_marked_on_the_image_and_counted_on_the_series_icon(shown, qtbot, study):
    ws, a, b = shown
    vp = ws.active_viewport()
    assert vp.key_image_titles() == []
    vp.go_to(2)
    assert vp.key_image_titles() == ["Of Interest"]
    arr = _rgb(vp)
    gold = (arr[..., 0] > 200) & (arr[..., 1] > 180) & (arr[..., 2] < 60)
    assert gold[: vp.height() // 4].sum() > 20  # the star and title at the top
    thumbs = ws.thumbnails
    assert thumbs.key_image_count(study.series[0].series_uid) == 2
    assert thumbs.key_image_count(study.series[1].series_uid) == 1
    assert thumbs.key_image_count(study.series[2].series_uid) == 0
    qtbot.waitUntil(thumbs.icons_ready, timeout=5000)
    icon = thumbs.item(0).icon().pixmap(96, 96).toImage().convertToFormat(QImage.Format.Format_RGB888)
    plain = thumbs.item(2).icon().pixmap(96, 96).toImage().convertToFormat(QImage.Format.Format_RGB888)
    assert icon.pixelColor(80, 10).name() == "#ffd700" and plain.pixelColor(80, 10).name() != "#ffd700"
    assert "2 key images" in thumbs.item(0).toolTip()


def test_derived_series_are_grouped_under_their_own_heading(qtbot, study):
    derived = study.series[2]
    ws = ViewerWorkspace()
    qtbot.addWidget(ws)
    ws.resize(900, 600)
    ws.show()
    qtbot.waitExposed(ws)
    ws.open_study(replace(study, derived_series=(derived.series_uid,)), InMemoryMeasurementStore())
    thumbs = ws.thumbnails
    assert thumbs.headings() == [(2, "DERIVED\nnot acquired")]
    assert thumbs.series_uids() == [s.series_uid for s in study.series]
    assert "not acquired" in thumbs.item(3).toolTip()
    heading = thumbs.item(2)
    assert not heading.flags() & Qt.ItemFlag.ItemIsSelectable and not heading.flags() & Qt.ItemFlag.ItemIsDragEnabled
    shown = ws.active_viewport().series()
    qtbot.mouseClick(thumbs.viewport(), Qt.MouseButton.LeftButton, pos=thumbs.visualItemRect(heading).center())
    assert ws.active_viewport().series() == shown  # the heading opens nothing
    qtbot.mouseClick(thumbs.viewport(), Qt.MouseButton.LeftButton, pos=thumbs.visualItemRect(thumbs.item(3)).center())
    assert ws.active_viewport().series() == derived


def test_objects_of_a_study_no_longer_open_are_dropped(qtbot, study, tmp_path):
    a = [read(p) for p in study.series[0].paths]
    many = tuple(save(foreign_gsps(a[:1], label=f"S{i}"), tmp_path / f"pr{i}.dcm") for i in range(20))
    ws = ViewerWorkspace()
    qtbot.addWidget(ws)
    ws.resize(900, 600)
    ws.show()
    qtbot.waitExposed(ws)
    ws.open_study(replace(study, object_paths=many), InMemoryMeasurementStore())
    ws.open_study(study, InMemoryMeasurementStore())  # the reader moves on before they are read
    assert ws.study_objects_ready() and ws.study_objects().states == []
    qtbot.wait(1500)
    assert ws.study_objects().states == [] and ws.active_viewport().presentation_state() is None


def test_ctrl_shift_p_steps_through_the_images_presentation_states(qtbot, study, tmp_path):
    a = [read(p) for p in study.series[0].paths]
    old = save(foreign_gsps(a[:1], label="TECHNOLOGIST", date="20240101", window=(10.0, 100.0)), tmp_path / "a.dcm")
    new = save(foreign_gsps(a[:1], label="RADIOLOGIST", date="20250101"), tmp_path / "b.dcm")
    ws = ViewerWorkspace()
    qtbot.addWidget(ws)
    ws.resize(900, 600)
    ws.show()
    qtbot.waitExposed(ws)
    ws.open_study(replace(study, object_paths=(old, new)), InMemoryMeasurementStore())
    qtbot.waitUntil(ws.study_objects_ready, timeout=5000)
    vp = ws.active_viewport()
    assert [st.label for st in vp.presentation_states()] == ["RADIOLOGIST", "TECHNOLOGIST"]
    assert vp.presentation_state().label == "RADIOLOGIST"  # the newest applies
    ctrl_shift = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(vp, Qt.Key.Key_P, ctrl_shift)
    assert vp.presentation_state().label == "TECHNOLOGIST" and vp.state.window.center == 10.0
    qtbot.keyClick(vp, Qt.Key.Key_P, ctrl_shift)
    assert vp.presentation_state().label == "RADIOLOGIST" and vp.state.window.center == 100.0


def test_viewports_of_a_larger_grid_show_the_studys_objects_too(shown, qtbot):
    """Viewports are created on demand (a 2x2 after a 1x1): they get the study's GSPS/KOS and the toggle."""
    ws, a, _ = shown
    before = len(ws.layout_view.viewports())
    ws.layout_view.set_grid(2, 2)
    created = ws.layout_view.viewports()[before:]
    assert created, "the 2x2 grid created no viewport"
    for vp in created:
        assert vp.study_objects() is ws.study_objects()
    ws.set_presentation_enabled(False)
    ws.layout_view.set_grid(3, 3)
    newest = ws.layout_view.viewports()[-1]
    assert newest.study_objects() is ws.study_objects() and not newest.presentation_enabled()
    # the new viewports decode their images on the shared queue: end only when that and the icons are done
    qtbot.waitUntil(lambda: all(vp._job is None for vp in ws.layout_view.all_viewports())
                    and ws.thumbnails.icons_ready(), timeout=20000)
