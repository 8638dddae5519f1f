"""The measurement list model without a window: add/rename/move/delete, undo/redo per image, persistence,
notifications, labels and a failing store."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.io.image import DicomImage
from viewer.measure.shapes import Arrow, Distance, Note, RectROI
from viewer.measure.store import InMemoryMeasurementStore
from viewer.models.measurements import ImageMeasurements


class _Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def __call__(self, event: str) -> None:
        self.events.append(event)


def test_edits_are_saved_per_image_and_heard_by_listeners():
    store = InMemoryMeasurementStore()
    model, heard = ImageMeasurements(store), _Recorder()
    model.subscribe(heard)
    model.show("1.2.3")
    model.add(Distance(p0=(10, 10), p1=(50, 10)))
    model.add(Arrow(tip=(5, 5), tail=(20, 20)))
    assert [m["kind"] for m in store.load("1.2.3")] == ["distance", "arrow"]
    assert model.selected == 1  # what was drawn last is selected
    model.rename(1, "  RUL nodule ")
    model.move(0, 5, -2)
    assert store.load("1.2.3")[1]["label"] == "RUL nodule"
    assert tuple(store.load("1.2.3")[0]["p0"]) == (15, 8)
    model.delete(1)
    assert [m.kind for m in model.items()] == ["distance"] and model.selected is None
    assert heard.events == ["loaded", "changed", "changed", "changed", "changed", "changed"]
    model.show("4.5.6")  # another image: its own (empty) list
    assert len(model) == 0 and heard.events[-1] == "loaded"
    model.show("1.2.3")  # and back: read from the store
    assert [m.kind for m in model.items()] == ["distance"]
    model.unsubscribe(heard)
    model.clear()
    assert heard.events[-1] == "loaded" and store.load("1.2.3") == []


def test_renaming_to_the_same_name_is_no_change():
    model, heard = ImageMeasurements(), _Recorder()
    model.show("1")
    model.add(Note(anchor=(1, 1), label="Effusion"))
    model.subscribe(heard)
    model.rename(0, "Effusion ")
    assert heard.events == [] and model[0].label == "Effusion"
    assert model.undo() and len(model) == 0  # the add is still what undo takes back


def test_undo_and_redo_are_per_image_and_a_new_change_forgets_the_redo():
    model = ImageMeasurements()
    model.show("a")
    model.add(Arrow(tip=(10, 10), tail=(30, 30)))
    model.move(0, 5, 0)
    model.show("b")
    assert not model.undo()  # nothing was done on image b
    model.add(Note(anchor=(1, 1), label="b's"))
    model.show("a")
    assert model.undo() and model[0].tip == (10, 10)
    assert model.redo() and model[0].tip == (15, 10)
    assert model.undo() and model.undo() and len(model) == 0
    assert not model.undo()
    model.add(Note(anchor=(2, 2), label="new"))
    assert not model.redo()  # the new change forgot what was undone
    model.show("b")
    assert [m.label for m in model.items()] == ["b's"]


def test_undo_depth_is_bounded():
    model = ImageMeasurements(undo_depth=3)
    model.show("a")
    for i in range(5):
        model.add(Note(anchor=(i, i), label=str(i)))
    assert sum(model.undo() for _ in range(10)) == 3
    assert [m.label for m in model.items()] == ["0", "1"]


def test_a_drag_is_one_undo_step_saved_at_the_end():
    store = InMemoryMeasurementStore()
    model, heard = ImageMeasurements(store), _Recorder()
    model.show("a")
    model.add(Distance(p0=(0, 0), p1=(10, 0)))
    model.subscribe(heard)
    model.remember()
    for _ in range(4):
        model.move(0, 1, 0, save=False)
    assert tuple(store.load("a")[0]["p0"]) == (0, 0)  # not saved while dragging
    model.save()
    assert tuple(store.load("a")[0]["p0"]) == (4, 0)
    assert heard.events == ["moving"] * 4 + ["changed"]
    assert model.undo() and model[0].p0 == (0, 0)


def test_selection_and_delete_selected():
    model = ImageMeasurements()
    model.show("a")
    model.add(Distance(p0=(0, 0), p1=(10, 0)))
    model.add(Distance(p0=(0, 5), p1=(10, 5)))
    model.select(0)
    assert model.delete_selected() and [m.p0 for m in model.items()] == [(0, 5)]
    assert not model.delete_selected()  # nothing selected any more
    with pytest.raises(IndexError):
        model.select(3)
    with pytest.raises(IndexError):
        model.delete(3)
    assert len(model) == 1


def test_labels_measure_on_the_image_and_follow_edits(gray_dataset):
    model = ImageMeasurements()
    pixels = np.full((64, 64), 1040, dtype=np.uint16)
    img = DicomImage.from_dataset(gray_dataset(pixels, RescaleSlope=1, RescaleIntercept=-1000, PixelSpacing=[0.5, 0.5]))
    model.show(img.sop_instance_uid)
    model.add(Distance(p0=(10, 10), p1=(50, 10)))
    model.add(RectROI(p0=(0, 0), p1=(20, 20)))
    model.add(Arrow(tip=(5, 5), tail=(20, 20), label="here"))
    labels = model.labels(img)
    assert labels[0] == "20.0 mm" and "mean 40.0 HU" in labels[1] and labels[2] == "here"
    model.rename(0, "nodule")
    model.move(0, 0, 0)
    assert model.label(0, img) == "nodule\n20.0 mm"
    model.move(0, 0, 0)  # the label is measured again after a move (the cache is dropped)
    model[0].p1 = (30, 10)
    model.forget_labels()
    assert model.label(0, img) == "nodule\n10.0 mm"


class _BrokenStore:
    def __init__(self) -> None:
        self.fail_load = False

    def load(self, uid):
        if self.fail_load:
            raise OSError("database is locked")
        return [{"kind": "distance", "p0": [0, 0], "p1": [4, 0]}, {"kind": "from-the-future"}]

    def save(self, uid, measurements):
        raise OSError("disk full")


def test_a_failing_store_keeps_the_shapes_and_says_why():
    store = _BrokenStore()
    model = ImageMeasurements(store)
    model.show("a")
    assert [m.kind for m in model.items()] == ["distance"]  # the unreadable record is skipped
    model.add(Note(anchor=(1, 1), label="kept"))
    assert len(model) == 2 and "NOT saved" in model.error and "disk full" in model.error
    store.fail_load = True
    model.set_store(store)
    assert len(model) == 0 and "could not be loaded" in model.error and "database is locked" in model.error


class _RecordingStore(InMemoryMeasurementStore):
    def __init__(self) -> None:
        super().__init__()
        self.saved: list[str] = []

    def save(self, uid, measurements):
        self.saved.append(uid)
        super().save(uid, measurements)


def test_without_an_image_nothing_is_saved_or_remembered():
    store = _RecordingStore()
    model, heard = ImageMeasurements(store), _Recorder()
    model.subscribe(heard)
    model.show(None)
    model.add(Note(anchor=(1, 1), label="x"))
    assert model.uid is None and not model.undo() and store.saved == []
    assert heard.events == ["loaded", "changed"]  # still shown and listed (as before, in session only)


def test_a_list_read_in_the_background_is_merged_with_what_was_drawn_meanwhile():
    """begin_show/finish_show (the viewport reads a database store on a worker thread): a shape drawn, moved
    and renamed before the stored list arrives survives, the stored ones are not overwritten, and undo then
    takes back only the reader's own steps."""
    store = InMemoryMeasurementStore()
    store.save("1.2.3", [Distance(p0=(0, 0), p1=(10, 0)).to_dict(), Arrow(tip=(1, 1), tail=(9, 9)).to_dict()])
    model, heard = ImageMeasurements(store), _Recorder()
    model.subscribe(heard)
    ticket = model.begin_show("1.2.3")
    assert model.reading and model.awaits(ticket) and len(model) == 0
    records = store.load("1.2.3")  # what the worker read
    model.add(Note(anchor=(3, 4), label="check"))
    model.move(0, 1, 1)
    model.rename(0, "drawn while loading")
    assert len(store.load("1.2.3")) == 2  # nothing written yet: it would replace the stored list
    assert model.undo() is False  # undo waits for the stored list too
    assert model.finish_show(ticket, records) is True and not model.reading
    assert [m.kind for m in model.items()] == ["distance", "arrow", "text"]
    assert model.selected == 2  # still the shape the reader drew
    saved = store.load("1.2.3")
    assert [d["kind"] for d in saved] == ["distance", "arrow", "text"]
    assert saved[2]["label"] == "drawn while loading" and tuple(saved[2]["anchor"]) == (4, 5)
    assert heard.events[0] == "loaded" and heard.events[-1] == "loaded"
    assert model.undo() and model.undo() and model.undo()  # rename, move, add: the stored shapes stay
    assert [d["kind"] for d in store.load("1.2.3")] == ["distance", "arrow"]
    assert model.undo() is False


def test_a_stale_or_failed_background_read_changes_nothing_it_should_not():
    store = InMemoryMeasurementStore()
    store.save("A", [Distance(p0=(0, 0), p1=(10, 0)).to_dict()])
    model = ImageMeasurements(store)
    first = model.begin_show("A")
    second = model.begin_show("B")  # scrolled on before A's list arrived
    assert not model.awaits(first) and model.awaits(second)
    assert model.finish_show(first, store.load("A")) is False and len(model) == 0 and model.uid == "B"
    assert model.finish_show(second, []) is True
    ticket = model.begin_show("A")
    model.add(Arrow(tip=(1, 1), tail=(5, 5)))
    assert model.finish_show(ticket, error=OSError("database is locked")) is True
    assert "could not be loaded: database is locked" in model.error and "NOT saved" in model.error
    assert [m.kind for m in model.items()] == ["arrow"]  # still on screen
    assert [d["kind"] for d in store.load("A")] == ["distance"]  # the stored list was not replaced
    assert model.begin_show(None) is None and not model.reading


class _FlakyStore(InMemoryMeasurementStore):
    """A database that cannot be read for a while (locked, server down) and then can again."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def load(self, uid):
        if self.down:
            raise OSError("database is locked")
        return super().load(uid)


def test_a_shape_drawn_after_a_failed_load_never_replaces_the_stored_list():
    """A save replaces the image's whole list: after a failed load it must read the stored list first (and
    keep it), or write nothing while it cannot, never save only what was drawn since."""
    store = _FlakyStore()
    store.save("A", [Distance(p0=(0, 0), p1=(10, 0)).to_dict()])
    model = ImageMeasurements(store)
    store.down = True
    model.show("A")
    assert len(model) == 0 and "could not be loaded" in model.error
    model.add(Arrow(tip=(1, 1), tail=(5, 5)))  # the database is still down
    assert "NOT saved" in model.error and [m.kind for m in model.items()] == ["arrow"]
    store.down = False
    assert [d["kind"] for d in store.load("A")] == ["distance"]  # nothing was written while it was down
    model.add(Note(anchor=(2, 2), label="second"))  # the database is back: read, merge, save
    assert model.error == ""
    assert [m.kind for m in model.items()] == ["distance", "arrow", "text"]
    assert [d["kind"] for d in store.load("A")] == ["distance", "arrow", "text"]
