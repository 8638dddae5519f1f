"""Tells a viewport on the GUI thread that its background decode has something to show.

The viewport used to poll its decode future from a 10 ms timer: up to 10 ms, plus a timer slot, on
every first image (a 3000^2 HTJ2K preview is ready in about 18 ms). Here the decode worker emits a
queued signal on one relay object that lives on the GUI thread, and the relay hands the news to the
viewport there.

The worker holds the viewport only weakly and never dereferences it: a strong reference dropped on a
worker thread would run the widget's destructor off the GUI thread (see `viewer.io.decode_queue`).
A viewport closed or deleted before the news arrives is skipped.
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import Future
from typing import Protocol

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal, Slot

__all__ = ["DONE", "PREVIEW", "Listener", "notifier"]

PREVIEW = "preview"  # a reduced-resolution frame and its window are ready
DONE = "done"  # the job finished (decoded, failed or cancelled)


class Listener(Protocol):
    def decode_arrived(self, job: Future | None, what: str) -> None: ...


class _Relay(QObject):
    """Lives on the GUI thread; `arrived` is always queued, so its slot runs there, never inline."""

    arrived = Signal(object, object, str)  # weak reference to the listener, the job (or None), PREVIEW/DONE

    def __init__(self) -> None:
        super().__init__()
        self.arrived.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    @Slot(object, object, str)
    def _deliver(self, ref: weakref.ref, job: Future | None, what: str) -> None:
        listener = ref()
        if listener is None or not shiboken6.isValid(listener):
            return  # closed and deleted while the news was on its way
        listener.decode_arrived(job, what)


class Notifier:
    """What a decode job is given instead of its viewport: a weak reference and the relay."""

    __slots__ = ("_ref",)

    def __init__(self, listener: Listener) -> None:
        self._ref = weakref.ref(listener)

    def preview_ready(self) -> None:
        """Called on the worker once a preview is decoded and windowed."""
        _relay().arrived.emit(self._ref, None, PREVIEW)

    def job_done(self, job: Future) -> None:
        """A `Future.add_done_callback`: runs on the worker (or the GUI thread for a cancelled job)."""
        _relay().arrived.emit(self._ref, job, DONE)


def notifier(listener: Listener) -> Notifier:
    """A notifier for `listener`; call this on the GUI thread first (it creates the relay there)."""
    _relay()
    return Notifier(listener)


_relay_obj: _Relay | None = None
_relay_lock = threading.Lock()


def _relay() -> _Relay:
    global _relay_obj
    with _relay_lock:
        if _relay_obj is None:
            _relay_obj = _Relay()
            app = QCoreApplication.instance()
            if app is not None and _relay_obj.thread() is not app.thread():
                _relay_obj.moveToThread(app.thread())
        return _relay_obj
