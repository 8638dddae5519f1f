"""Send real Qt mouse/wheel events to a widget (QTest cannot hold a right button during a move)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QWidget


def _send(widget: QWidget, kind, pos: tuple[float, float], button, buttons, mods=Qt.KeyboardModifier.NoModifier):
    local = QPointF(*pos)
    glob = QPointF(widget.mapToGlobal(local.toPoint()))
    ev = QMouseEvent(kind, local, glob, button, buttons, mods)
    QApplication.sendEvent(widget, ev)


def drag(widget: QWidget, start, end, button=Qt.MouseButton.LeftButton, steps: int = 4) -> None:
    _send(widget, QMouseEvent.Type.MouseButtonPress, start, button, button)
    for i in range(1, steps + 1):
        t = i / steps
        p = (start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)
        _send(widget, QMouseEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, button)
    _send(widget, QMouseEvent.Type.MouseButtonRelease, end, button, Qt.MouseButton.NoButton)


def click(widget: QWidget, pos, button=Qt.MouseButton.LeftButton) -> None:
    _send(widget, QMouseEvent.Type.MouseButtonPress, pos, button, button)
    _send(widget, QMouseEvent.Type.MouseButtonRelease, pos, button, Qt.MouseButton.NoButton)


def move(widget: QWidget, pos) -> None:
    _send(widget, QMouseEvent.Type.MouseMove, pos, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)


def wheel(widget: QWidget, pos, delta_y: int, mods=Qt.KeyboardModifier.NoModifier) -> None:
    local = QPointF(*pos)
    ev = QWheelEvent(local, QPointF(widget.mapToGlobal(local.toPoint())), QPoint(0, 0), QPoint(0, delta_y),
                     Qt.MouseButton.NoButton, mods, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, ev)
