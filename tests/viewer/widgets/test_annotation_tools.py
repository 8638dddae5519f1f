"""Arrow and text-note tools driven by keys and the mouse: drawn, labelled by typing over the image, listed in the
measurement list (rename, move, delete), undone and redone with Ctrl+Z / Ctrl+Shift+Z, persisted per image."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLineEdit

from tests.support.input_events import click, drag
from viewer.measure.shapes import Arrow, Distance, Note
from viewer.measure.store import InMemoryMeasurementStore
from viewer.models.tools import Tool
from viewer.widgets.measurement_list import MeasurementList
from viewer.widgets.viewport import Viewport


@pytest.fixture
def viewer(qtbot, ct_series):
    """A viewport on a CT series, its first slice on screen, with its measurement list and the store they
    persist to."""

    def settle(w: Viewport) -> None:
        # pytest-qt closes and deletes registered widgets before fixture teardown runs, so what must happen
        # while the viewport still exists is done here: no typing lost, no decode left running
        w.close_note_editor()
        qtbot.waitUntil(lambda: not w.is_loading(), timeout=10000)

    store = InMemoryMeasurementStore()
    vp = Viewport(measurement_store=store)
    qtbot.addWidget(vp, before_close_func=settle)
    vp.resize(400, 400)
    vp.show()
    vp.set_series(ct_series)
    vp.setFocus()
    qtbot.waitUntil(lambda: not vp.is_loading(), timeout=10000)  # the slice is decoded off the GUI thread
    listing = MeasurementList()
    qtbot.addWidget(listing)
    listing.set_viewport(vp)
    return vp, listing, store


def _editor(qtbot, vp: Viewport) -> QLineEdit:
    qtbot.waitUntil(lambda: vp.note_editor() is not None and vp.note_editor().isVisible(), timeout=3000)
    return vp.note_editor()


def _rgb(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


def test_arrow_drawn_from_the_finding_and_labelled_by_typing(qtbot, viewer):
    vp, listing, store = viewer
    qtbot.keyClick(vp, Qt.Key.Key_X)
    assert vp.tool() == Tool.ARROW
    tip, tail = (150.0, 150.0), (260.0, 250.0)
    drag(vp, tip, tail)
    editor = _editor(qtbot, vp)
    qtbot.keyClicks(editor, "RUL nodule")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: vp.note_editor() is None, timeout=3000)
    [arrow] = vp.measurements()
    assert isinstance(arrow, Arrow) and arrow.label == "RUL nodule"
    assert np.allclose(vp._to_widget(arrow.tip), tip, atol=1) and np.allclose(vp._to_widget(arrow.tail), tail, atol=1)
    assert vp.measurement_labels() == ["RUL nodule"]  # an arrow measures nothing: its label only
    assert listing.table.item(0, 0).text() == "RUL nodule" and listing.table.item(0, 1).text() == "Arrow"
    box = vp.label_rects()[0]
    assert box.left() > tail[0] and abs(box.center().y() - tail[1]) < box.height()  # text at the tail
    before = _rgb(vp)
    vp.delete_measurement(0)
    after = _rgb(vp)
    assert (np.abs(before.astype(int) - after.astype(int)).sum(axis=2) > 60)[140:160, 140:160].any()  # head painted
    assert store.load(vp.current_image().sop_instance_uid) == []


def test_text_note_by_click_and_keys_escape_and_focus_loss(qtbot, viewer):
    vp, listing, store = viewer
    qtbot.keyClick(vp, Qt.Key.Key_N)
    assert vp.tool() == Tool.TEXT
    click(vp, (120, 80))
    editor = _editor(qtbot, vp)
    qtbot.keyClicks(editor, "Fluid level")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(vp.measurements()) == 1, timeout=3000)
    note = vp.measurements()[0]
    assert isinstance(note, Note) and note.label == "Fluid level"
    assert np.allclose(vp._to_widget(note.anchor), (120, 80), atol=1)
    assert listing.table.item(0, 1).text() == "Text note"
    uid = vp.current_image().sop_instance_uid
    assert store.load(uid)[0] == {"kind": "text", "frame": 0, "label": "Fluid level", "anchor": list(note.anchor)}
    # Esc drops a new note; an empty Enter places nothing
    click(vp, (60, 300))
    qtbot.keyClicks(_editor(qtbot, vp), "typo")
    qtbot.keyClick(vp.note_editor(), Qt.Key.Key_Escape)
    click(vp, (60, 300))
    qtbot.keyClick(_editor(qtbot, vp), Qt.Key.Key_Return)
    assert len(vp.measurements()) == 1
    # typing then scrolling to the next image keeps the note on the image it was typed on
    click(vp, (200, 300))
    qtbot.keyClicks(_editor(qtbot, vp), "seen on 1")
    vp.step(1)
    assert vp.note_editor() is None and vp.current_image().sop_instance_uid != uid
    assert [r["label"] for r in store.load(uid)] == ["Fluid level", "seen on 1"]
    # typing then leaving the viewer (another tab hides it) keeps the note too
    click(vp, (100, 100))
    qtbot.keyClicks(_editor(qtbot, vp), "kept")
    vp.hide()
    assert [m.label for m in vp.measurements()] == ["kept"]
    vp.show()


def test_notes_are_selected_moved_renamed_and_deleted_like_measurements(qtbot, viewer):
    vp, listing, store = viewer
    vp.add_measurement(Distance(p0=(5, 5), p1=(20, 5)))
    vp.add_measurement(Note(anchor=(8.0, 20.0), label="Effusion"))
    vp.set_tool(Tool.WINDOW)
    box = vp.label_rects()[1]
    start = (box.center().x(), box.center().y())
    drag(vp, start, (start[0] + 40, start[1] + 40))  # dragging the text moves the note
    moved = vp.measurements()[1]
    assert moved.anchor[0] > 8.0 and moved.anchor[1] > 20.0
    # double-click on the note types its text again
    box = vp.label_rects()[1]
    qtbot.mouseDClick(vp, Qt.MouseButton.LeftButton, pos=box.center().toPoint())
    editor = _editor(qtbot, vp)
    editor.selectAll()
    qtbot.keyClicks(editor, "Small effusion")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert vp.measurements()[1].label == "Small effusion"
    # rename from the list
    listing.table.item(1, 0).setText("Large effusion")
    assert vp.measurements()[1].label == "Large effusion"
    listing.table.selectRow(1)
    listing.delete_selected()
    assert [m.kind for m in vp.measurements()] == ["distance"]


def test_ctrl_z_undoes_and_ctrl_shift_z_redoes(qtbot, viewer):
    vp, listing, store = viewer
    uid = vp.current_image().sop_instance_uid
    vp.add_measurement(Arrow(tip=(10, 10), tail=(30, 30)))
    vp.add_measurement(Note(anchor=(40, 40), label="A"))
    vp.move_measurement(0, 5, 0)
    vp.delete_measurement(1)
    assert [m.kind for m in vp.measurements()] == ["arrow"] and vp.measurements()[0].tip == (15, 10)
    vp.setFocus()
    qtbot.keyClick(vp, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # the delete
    assert [m.kind for m in vp.measurements()] == ["arrow", "text"]
    assert [r["kind"] for r in store.load(uid)] == ["arrow", "text"]  # saved as undone
    qtbot.keyClick(vp, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # the move
    assert vp.measurements()[0].tip == (10, 10)
    qtbot.keyClick(vp, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert vp.measurements()[0].tip == (15, 10)
    for _ in range(5):
        qtbot.keyClick(vp, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert vp.measurements() == [] and "Nothing to undo" in vp.notice()
    vp.add_measurement(Note(anchor=(1, 1), label="new"))  # a new change forgets what was undone
    qtbot.keyClick(vp, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert "Nothing to redo" in vp.notice() and len(vp.measurements()) == 1


def test_annotations_come_back_from_the_store(qtbot, viewer, ct_series):
    vp, listing, store = viewer
    vp.add_measurement(Arrow(tip=(10, 10), tail=(30, 30), label="here"))
    vp.add_measurement(Note(anchor=(40, 40), label="two\nlines"))
    again = Viewport(measurement_store=store)
    qtbot.addWidget(again)
    again.resize(300, 300)
    again.set_series(ct_series)
    assert [(m.kind, m.label) for m in again.measurements()] == [("arrow", "here"), ("text", "two\nlines")]
    assert again.measurements()[0].tip == (10, 10)
    qtbot.waitUntil(lambda: not again.is_loading(), timeout=10000)


def test_arrow_head_points_at_the_tip():
    from viewer.measure.shapes import arrow_head

    b1, b2 = arrow_head((0.0, 0.0), (10.0, 0.0), 3.0)
    assert b1[0] > 0 and b2[0] > 0 and b1[1] == pytest.approx(-b2[1]) and abs(np.hypot(*b1) - 3) < 1e-9
    assert arrow_head((1.0, 1.0), (1.0, 1.0), 3.0) == ((1.0, 1.0), (1.0, 1.0))


def test_k_flags_the_image_of_interest_marks_it_and_persists(qtbot, study):
    """K (or the toolbar's Of Interest) flags the image being read: marked on the image like a KOS key image,
    counted on its series icon, kept in the store; K again removes it."""
    from viewer.presentation.interest import LOCAL_TITLE, InMemoryInterestStore
    from viewer.widgets.workspace import ViewerWorkspace

    store = InMemoryInterestStore()
    ws = ViewerWorkspace(interest_store=store)
    qtbot.addWidget(ws)
    ws.resize(1000, 700)
    ws.show()
    ws.open_study(study)
    qtbot.waitUntil(lambda: ws.thumbnails.icons_ready() and ws.study_objects_ready(), timeout=20000)
    vp = ws.active_viewport()
    vp.setFocus()
    uid = vp.current_image().sop_instance_uid
    series_uid = vp.series().series_uid
    qtbot.keyClick(vp, Qt.Key.Key_K)
    assert vp.key_image_titles() == [LOCAL_TITLE] and vp.is_of_interest()
    assert ws._interest_action.isChecked()
    assert [r.sop_instance_uid for r in store.load(study.study_uid)] == [uid]
    assert ws.thumbnails._key_counts == {series_uid: 1}
    vp.step(1)  # the next image is not flagged; the toolbar follows the image on screen
    assert vp.key_image_titles() == [] and not ws._interest_action.isChecked()
    ws._interest_action.trigger()  # the toolbar flags this one
    assert ws.thumbnails._key_counts == {series_uid: 2} and len(store.load(study.study_uid)) == 2
    vp.step(-1)
    qtbot.keyClick(vp, Qt.Key.Key_K)  # unflag the first
    assert vp.key_image_titles() == [] and ws.thumbnails._key_counts == {series_uid: 1}
    assert [r.sop_instance_uid for r in store.load(study.study_uid)] != [uid]
    # reopened: the flag comes back from the store
    again = ViewerWorkspace(interest_store=store)
    qtbot.addWidget(again)
    again.open_study(study)
    qtbot.waitUntil(lambda: again.thumbnails.icons_ready() and again.study_objects_ready(), timeout=20000)
    assert len(again.interest_flags()) == 1 and again.thumbnails._key_counts == {series_uid: 1}
    qtbot.waitUntil(lambda: not vp.is_loading() and not again.active_viewport().is_loading(), timeout=10000)


def test_interest_key_is_in_the_cheat_sheet():
    from viewer.models import tools

    assert tools.key_for("toggle_interest") == "K" and "Of Interest" in tools.COMMAND_LABELS["toggle_interest"]
    assert tools.key_for("tool:arrow") == "X" and tools.key_for("tool:text") == "N"
    assert tools.key_for("undo_measurement") == "Ctrl+Z"
