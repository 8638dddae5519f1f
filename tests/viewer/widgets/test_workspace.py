"""ViewerWorkspace: thumbnails, layouts with a series per viewport, toolbar, tag browser."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication

from viewer.imaging.window import PRESET_KEYS, PRESETS
from viewer.measure.store import InMemoryMeasurementStore
from viewer.models.tools import Tool
from viewer.widgets.viewport import SERIES_MIME
from viewer.widgets.workspace import ViewerWorkspace


@pytest.fixture
def ws(qtbot, study):
    w = ViewerWorkspace()
    qtbot.addWidget(w)
    w.resize(900, 600)
    w.show()
    qtbot.waitExposed(w)
    w.open_study(study, InMemoryMeasurementStore())
    return w


def test_open_study_shows_thumbnails_and_first_series(ws, study, qtbot):
    assert ws.thumbnails.series_uids() == [s.series_uid for s in study.series]
    qtbot.waitUntil(ws.thumbnails.icons_ready, timeout=5000)
    assert ws.active_viewport().series() == study.series[0]
    assert ws.current_image().series_uid == study.series[0].series_uid
    assert ws.active_viewport().is_active()


def test_layouts_hold_different_series(ws, study):
    ws.set_layout("2x2")
    vps = ws.viewports()
    assert len(vps) == 4
    assert [vp.series() for vp in vps[:3]] == list(study.series)
    assert vps[3].series() is None
    ws.set_layout("1x2")
    assert len(ws.viewports()) == 2 and ws.layout_view.grid() == (1, 2)
    with pytest.raises(ValueError):
        ws.set_layout("5x5")


def test_click_activates_viewport_and_thumbnail_loads_into_it(ws, study, qtbot):
    ws.set_layout("1x2")
    right = ws.viewports()[1]
    qtbot.mouseClick(right, Qt.MouseButton.LeftButton, pos=right.rect().center())
    assert ws.active_viewport() is right and right.is_active() and not ws.viewports()[0].is_active()
    item = ws.thumbnails.item(2)
    rect = ws.thumbnails.visualItemRect(item)
    with qtbot.waitSignal(ws.imageChanged, timeout=2000):
        qtbot.mouseClick(ws.thumbnails.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert right.series() == study.series[2]
    assert ws.current_image().modality == "US"


def test_dropping_a_thumbnail_on_a_viewport_loads_that_series(ws, study):
    ws.set_layout("1x2")
    target = ws.viewports()[0]
    mime = ws.thumbnails.mimeData([ws.thumbnails.item(2)])
    assert bytes(mime.data(SERIES_MIME)).decode() == study.series[2].series_uid
    for kind in (QDropEvent.Type.DragEnter, QDropEvent.Type.Drop):
        ev = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                        Qt.KeyboardModifier.NoModifier, kind)
        QApplication.sendEvent(target, ev)
    assert target.series() == study.series[2]
    ev = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, QMimeData(), Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, ev)  # foreign drops are ignored
    assert target.series() == study.series[2]


def test_toolbar_tool_and_anonymise_apply_to_all_viewports(ws, qtbot):
    ws.set_layout("2x2")
    ws.set_tool(Tool.DISTANCE)
    assert all(vp.tool() == Tool.DISTANCE for vp in ws.viewports())
    qtbot.keyClick(ws.active_viewport(), "A")
    assert all(vp.anonymised() for vp in ws.viewports())
    assert ws._anon_action.isChecked()


def test_image_changed_signal_on_scroll(ws, qtbot):
    vp = ws.active_viewport()
    with qtbot.waitSignal(ws.imageChanged, timeout=1000) as blocker:
        qtbot.keyClick(vp, Qt.Key.Key_Down)
    assert blocker.args[0] is ws.current_image()
    assert ws.current_image().dataset.InstanceNumber == 2


def test_tag_browser_follows_image_and_search_filters(ws, qtbot):
    dlg = ws.show_tag_browser()
    qtbot.addWidget(dlg)
    browser = dlg.browser
    all_tags = browser.visible_tags()
    assert "(0010,0010)" in all_tags and "(7FE0,0010)" in all_tags and len(all_tags) > 25
    browser.search.setText("(0010,0010)")
    assert browser.visible_tags() == ["(0010,0010)"]
    browser.search.setText("PatientID")
    assert browser.visible_tags() == ["(0010,0020)"]
    browser.search.setText("doe jane")  # by value (PN shown with spaces)
    assert browser.visible_tags() == ["(0010,0010)"]
    browser.search.setText("")
    assert browser.visible_tags() == all_tags
    qtbot.keyClick(ws.active_viewport(), Qt.Key.Key_Down)
    inst = [browser.tree.topLevelItem(i) for i in range(browser.tree.topLevelItemCount())]
    assert any(it.text(0) == "(0020,0013)" and it.text(3) == "2" for it in inst)


def test_mpr_and_3d_refuse_unsuitable_series_with_a_banner(ws, study):
    ws.load_series(study.series[2])  # US cine
    assert ws.show_mpr() is None
    assert "CT or MR" in ws.banner_text()
    ws.load_series(study.series[1])
    assert ws.show_3d() is None
    assert "display" in ws.banner_text()


def test_mpr_of_the_active_ct_series_and_presets_follow_it(ws, study, qtbot):
    ws.load_series(study.series[1])  # 6-slice CT
    mpr = ws.show_mpr()
    assert mpr is not None
    qtbot.waitUntil(lambda: mpr.volume() is not None, timeout=10000)
    assert ws.stack.currentWidget() is mpr and mpr.volume().shape == (6, 64, 80)
    ws._run("preset:" + str(next(k for k, v in PRESET_KEYS.items() if v == "bone")))
    assert mpr.window() == PRESETS["bone"]
    ws.show_2d()
    assert ws.stack.currentWidget() is ws.layout_view


def test_cine_rate_from_the_toolbar(ws):
    ws.fps.setValue(25)
    assert all(vp.cine_fps() == 25 for vp in ws.layout_view.all_viewports())


def test_m_key_in_a_viewport_opens_mpr_and_keys_stay_on_the_viewport(ws, study, qtbot):
    ws.activateWindow()
    ws.load_series(study.series[1])
    item = ws.thumbnails.item(1)
    qtbot.mouseClick(ws.thumbnails.viewport(), Qt.MouseButton.LeftButton,
                     pos=ws.thumbnails.visualItemRect(item).center())
    assert not ws.thumbnails.hasFocus()
    qtbot.keyClick(ws.active_viewport(), "M")
    qtbot.waitUntil(lambda: ws.mpr_view() is not None and ws.stack.currentWidget() is ws.mpr_view(), timeout=3000)


def test_tag_search_on_a_huge_header_waits_for_a_pause_in_typing(qtbot):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from viewer.widgets.tag_browser import TagBrowser

    ds = Dataset()
    items = []
    for i in range(1200):
        item = Dataset()
        item.InstanceNumber = i
        item.SliceLocation = i * 0.5
        items.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    ds.PatientName = "Big^Header"
    browser = TagBrowser()
    qtbot.addWidget(browser)
    browser.set_dataset(ds)
    browser.search.setText("Big")
    assert len(browser.visible_tags()) > 1000  # not filtered yet
    qtbot.waitUntil(lambda: browser.visible_tags() == ["(0010,0010)"], timeout=3000)
