"""The measurements, arrows and text notes of the image a view shows: a Qt-free list model.

Held apart from the `Viewport` widget (napari's model/view split): the list, the selection, per-image
undo/redo and persistence live here and are tested without a window; the viewport draws them and turns
mouse and keys into calls on this model. Listeners are plain callbacks `listener(event)`, with `event`
one of "loaded" (another image's list, or another store; again when a list read in the background
arrives), "selected", "moving" (a drag step, not yet
saved) and "changed" (an edit, saved). Shapes are viewer.measure's; each image (SOP Instance UID) keeps
its own list in a MeasurementStore, so the GSPS/TID 1500 export (which reads the store) sees what the
reader drew.

A database read on every image change stalled the GUI (20-50 ms per study switch under load), so a widget may
read the list on another thread: `begin_show` switches to the image at once (empty list), `finish_show` merges
the stored list in when the read arrives. What the reader draws, moves, renames or deletes meanwhile is kept:
it is written only once the stored list is known (a store's `save` replaces the image's list, so an earlier
write would drop the stored shapes) and its undo steps are given the stored shapes too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from viewer.measure.store import InMemoryMeasurementStore, MeasurementStore
from viewer.models import measure_tool

UNDO_DEPTH = 50  # measurement/annotation changes remembered per image

Listener = Callable[[str], None]


class ImageMeasurements:
    """The shapes drawn on one image at a time, saved to a store on every change, with undo/redo per image."""

    def __init__(self, store: MeasurementStore | None = None, undo_depth: int = UNDO_DEPTH) -> None:
        # without a database the measurements still survive scrolling away and back (session memory)
        self._store: MeasurementStore = store if store is not None else InMemoryMeasurementStore()
        self._uid: str | None = None
        self._items: list[Any] = []
        self._selected: int | None = None
        self._labels: dict[int, str] = {}
        self._error = ""
        self._undo: dict[str, list[list[dict[str, Any]]]] = {}  # per SOP Instance UID: earlier shape lists
        self._redo: dict[str, list[list[dict[str, Any]]]] = {}
        self._depth = max(1, undo_depth)
        self._listeners: list[Listener] = []
        self._reads = 0  # tickets handed out by begin_show
        self._reading: int | None = None  # the ticket of the read still awaited for this image
        self._unsaved = False  # edited while the read was awaited: saved with the stored list when it arrives
        self._undo_while_reading = 0  # undo steps remembered while the read was awaited (lack the stored shapes)
        self._stored_unknown = False  # the last read failed: the stored list is unknown until read again

    # ------------------------------------------------------------ notifications
    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, event: str) -> None:
        for listener in list(self._listeners):
            listener(event)

    # ------------------------------------------------------------ which image, which store
    @property
    def uid(self) -> str | None:
        """SOP Instance UID of the image whose list this is (None: no image)."""
        return self._uid

    @property
    def store(self) -> MeasurementStore:
        return self._store

    def set_store(self, store: MeasurementStore | None, reload: bool = True) -> None:
        """Where the lists persist (None: an in-memory store for this session); the list is read again unless
        `reload` is False (the caller reads it, e.g. in the background)."""
        self._store = store if store is not None else InMemoryMeasurementStore()
        if reload:
            self.show(self._uid)

    def show(self, uid: str | None) -> None:
        """Read the list of image `uid` from the store, here and now. A record this version cannot read
        (written by a newer one) is skipped and left in the store untouched; a store that fails leaves the
        list empty and says so in `error`."""
        ticket = self.begin_show(uid, notify=False)
        if ticket is None:
            self._notify("loaded")
            return
        try:
            records = self._store.load(uid)  # type: ignore[arg-type]
        except Exception as exc:  # the database is down: an empty list and the reason, never a crash
            self.finish_show(ticket, error=exc)
            return
        self.finish_show(ticket, records)

    def begin_show(self, uid: str | None, notify: bool = True) -> int | None:
        """Switch to image `uid` with an empty list and return the ticket its stored list is to be handed to
        `finish_show` with (None for no image: nothing to read). The caller reads `store.load(uid)`, e.g. on
        a worker thread; edits meanwhile are kept (see the module's docstring)."""
        self._uid = uid
        self._items, self._selected, self._labels, self._error = [], None, {}, ""
        self._unsaved, self._undo_while_reading, self._stored_unknown = False, 0, False
        self._reads += 1
        self._reading = self._reads if uid is not None else None
        if notify:
            self._notify("loaded")
        return self._reading

    def awaits(self, ticket: int | None) -> bool:
        """Whether the list read for `ticket` is still wanted (any thread: a worker skips a stale read)."""
        return ticket is not None and self._reading == ticket

    @property
    def reading(self) -> bool:
        """The stored list of the image on screen has not arrived yet."""
        return self._reading is not None

    def finish_show(self, ticket: int, records: list[dict[str, Any]] | None = None,
                    error: BaseException | None = None) -> bool:
        """Merge the stored list read for `ticket` in front of what was drawn meanwhile (saved then); False
        when another image was shown since (the list is dropped). A read that failed (`error`) leaves the
        list as drawn and says so in `error`; shapes drawn meanwhile are then not written, since the stored
        list they would replace is unknown."""
        if ticket is None or self._reading != ticket:
            return False
        self._reading = None
        stored = _readable(records)
        unsaved, self._unsaved = self._unsaved, False
        if error is not None:
            self._stored_unknown = True  # a save would replace a list nobody has seen: read it again first
            self._error = f"Measurements could not be loaded: {error}" + (
                "; the shapes drawn since are NOT saved" if unsaved else "")
            self._notify("loaded")
            return True
        if stored and self._uid is not None and self._undo_while_reading:
            before = [m.to_dict() for m in stored]
            for snapshot in self._undo.get(self._uid, [])[-self._undo_while_reading:]:
                snapshot[:0] = [dict(d) for d in before]
        self._undo_while_reading = 0
        self._put_stored_first(stored)
        self._labels = {}
        if unsaved:
            self.save()
        self._notify("loaded")
        return True

    # ------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Any:
        return self._items[index]

    def items(self) -> list[Any]:
        """The shapes in drawing order (a copy of the list; the shapes themselves are the model's)."""
        return list(self._items)

    @property
    def selected(self) -> int | None:
        return self._selected

    @property
    def error(self) -> str:
        """Why the last load or save of this image's list failed ('' when it worked)."""
        return self._error

    def label(self, index: int, image: Any) -> str:
        """The text shown beside shape `index`: its name over its value measured on `image` (mm, degrees, ROI
        statistics); '…' while the pixels it needs are still decoding (not remembered, so asked again)."""
        if index not in self._labels:
            m = self._items[index]
            frame = getattr(m, "frame", 0)
            if not measure_tool.is_annotation(m) and image is not None and not image.decode_is_cheap(frame):
                return "…"  # pixels still decoding in the background: labelled when they arrive
            try:
                text = measure_tool.label(m, image, frame)
            except Exception as exc:  # a shape outside the image etc.: say so on screen
                text = f"n/a ({exc})"
            name = getattr(m, "label", "")
            self._labels[index] = f"{name}\n{text}" if name and text else (name or text)
        return self._labels[index]

    def labels(self, image: Any) -> list[str]:
        return [self.label(i, image) for i in range(len(self._items))]

    def forget_labels(self) -> None:
        """Measure again when next asked (the image's pixels arrived or changed)."""
        self._labels = {}

    # ------------------------------------------------------------ editing
    def select(self, index: int | None) -> None:
        if index is not None and not 0 <= index < len(self._items):
            raise IndexError(f"no measurement {index}")
        self._selected = index
        self._notify("selected")

    def add(self, m: Any) -> None:
        """Add a measurement, arrow or text note (selected, saved; undo takes it back)."""
        self.remember()
        self._items.append(m)
        self._selected = len(self._items) - 1
        self.save()

    def rename(self, index: int, name: str) -> None:
        """Give shape `index` a name shown above its value (e.g. 'RUL nodule'); an arrow's label, a note's text."""
        if self._items[index].label == name.strip():
            return
        self.remember()
        self._items[index].label = name.strip()
        self.save()

    def move(self, index: int, dx: float, dy: float, save: bool = True) -> None:
        """Shift shape `index` by (dx, dy) image pixels; its value is measured again where it lands. With
        `save=False` (a drag in progress: the caller has called `remember` once and calls `save` at the end)
        listeners hear "moving"."""
        m = self._items[index]
        if save:
            self.remember()
        for name in m.POINTS:
            x, y = getattr(m, name)
            setattr(m, name, (x + dx, y + dy))
        self._labels.pop(index, None)
        if save:
            self.save()
        else:
            self._notify("moving")

    def delete(self, index: int) -> None:
        if not 0 <= index < len(self._items):
            raise IndexError(f"no measurement {index}")
        self.remember()
        del self._items[index]
        self._selected = None
        self.save()

    def delete_selected(self) -> bool:
        """Delete the selected shape; False when none is selected."""
        if self._selected is None or not 0 <= self._selected < len(self._items):
            return False
        self.delete(self._selected)
        return True

    def clear(self) -> None:
        self.remember()
        self._items = []
        self._selected = None
        self.save()

    # ------------------------------------------------------------ history and persistence
    def remember(self) -> None:
        """Keep the image's list as it is now, for undo; a new change forgets what was undone."""
        if self._uid is None:
            return
        stack = self._undo.setdefault(self._uid, [])
        stack.append([m.to_dict() for m in self._items])
        del stack[:-self._depth]
        self._redo.pop(self._uid, None)
        if self._reading is not None:
            self._undo_while_reading = min(self._undo_while_reading + 1, len(stack))

    def undo(self) -> bool:
        """Take back the last add, move, rename or delete on this image (saved at once); False: nothing to undo."""
        return self._swap(self._undo, self._redo)

    def redo(self) -> bool:
        return self._swap(self._redo, self._undo)

    def _swap(self, source: dict, target: dict) -> bool:
        if self._reading is not None:  # the steps would restore lists without the stored shapes: once read
            return False
        if self._uid is None or not source.get(self._uid):
            return False
        target.setdefault(self._uid, []).append([m.to_dict() for m in self._items])
        self._items = [measure_tool.from_dict(d) for d in source[self._uid].pop()]
        self._selected = None
        self.save()
        return True

    def save(self) -> None:
        """Write this image's list to the store and tell the listeners ("changed"). A store that fails keeps
        the shapes here (on screen) and says so in `error`."""
        self._labels = {}
        self._error = ""
        if self._uid is not None and self._reading is not None:
            self._unsaved = True  # written with the stored list once it arrives (finish_show)
        elif self._uid is not None and self._merge_unknown_stored():
            try:
                self._store.save(self._uid, [m.to_dict() for m in self._items])
            except Exception as exc:  # the database is down: keep the shapes and say so
                self._error = f"Measurements NOT saved: {exc}"
        self._notify("changed")

    def _merge_unknown_stored(self) -> bool:
        """After a failed load the image's stored list is unknown, and a save replaces the whole list: read it
        now and put it in front of what was drawn (True), or write nothing and say so (False), so shapes saved
        earlier are never lost because the database was down when the image was shown."""
        if not self._stored_unknown:
            return True
        try:
            records = self._store.load(self._uid)  # type: ignore[arg-type]
        except Exception as exc:
            self._error = ("Measurements NOT saved: this image's stored measurements could not be read, and "
                           f"saving now would replace them ({exc})")
            return False
        stored = _readable(records)
        self._stored_unknown = False
        self._put_stored_first(stored)
        return True

    def _put_stored_first(self, stored: list[Any]) -> None:
        """The stored shapes before those drawn while they were unknown; the selection follows its shape."""
        self._items = stored + self._items
        if self._selected is not None:
            self._selected += len(stored)


def _readable(records: list[dict[str, Any]] | None) -> list[Any]:
    """The stored records this version can read (one written by a newer version is skipped, left in the
    store untouched)."""
    out: list[Any] = []
    for d in records or []:
        try:
            out.append(measure_tool.from_dict(d))
        except (KeyError, TypeError, ValueError):
            continue
    return out
