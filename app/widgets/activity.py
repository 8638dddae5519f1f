"""Session activity across the whole application, and the idle check that locks the screen.

Reading images is work: scrolling, window/level drags, key presses anywhere in the window (viewer,
worklist, dialogs) keep the session alive, not only typing in the report. The monitor is an event filter on
the QApplication; it only looks at input events and never consumes them.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QTimer, Signal

ACTIVITY_EVENTS = frozenset({
    QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonDblClick, QEvent.Type.Wheel,
    QEvent.Type.TouchBegin, QEvent.Type.TabletPress, QEvent.Type.MouseMove,
})


class ActivityMonitor(QObject):
    """Marks the session active on user input (at most once a second) and emits `idle` when it expired.

    `session()` returns the current AuthSession (or None); only a session that has not yet expired is
    refreshed, so an expired one stays expired until the user logs in again.
    """

    idle = Signal()

    def __init__(self, session: Callable[[], object | None], parent: QObject | None = None,
                 check_ms: int = 1000) -> None:
        super().__init__(parent)
        self._session = session
        self._last_touch = 0.0
        self.last_input = time.monotonic()
        self._timer = QTimer(self)
        self._timer.setInterval(check_ms)
        self._timer.timeout.connect(self.check)
        self._timer.start()
        self._idle_sent = False

    def eventFilter(self, _obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() in ACTIVITY_EVENTS:
            self.touch()
        return False

    def touch(self) -> None:
        now = time.monotonic()
        self.last_input = now
        if now - self._last_touch < 1.0:
            return
        self._last_touch = now
        s = self._session()
        if s is not None and not s.is_expired():
            s.last_activity = dt.datetime.now(dt.UTC)
            self._idle_sent = False

    def check(self) -> None:
        s = self._session()
        if s is None:
            self._idle_sent = False
            return
        if s.is_expired() and not self._idle_sent:
            self._idle_sent = True
            self.idle.emit()

    def stop(self) -> None:
        self._timer.stop()
