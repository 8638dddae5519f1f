"""The one-line editor a viewport opens over the image to type a text note or an arrow's label.

Enter keeps the text, Esc drops it; leaving the box (a click elsewhere, another image) keeps what was typed,
so nothing the reader wrote is lost by moving on. The text can be changed later by renaming the note in the
measurement list (F2).
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QFocusEvent, QKeyEvent
from PySide6.QtWidgets import QLineEdit, QWidget


class NoteEditor(QLineEdit):
    """Emits `finished(text, keep)` once: keep is False only for Esc."""

    finished = Signal(str, bool)

    def __init__(self, parent: QWidget, at: QPoint, text: str = "", placeholder: str = "Type the note, Enter") -> None:
        super().__init__(text, parent)
        self.setObjectName("noteEditor")
        self.setPlaceholderText(placeholder)
        self.setMaxLength(1024)  # Unformatted Text Value (ST) holds 1024 characters
        self.setStyleSheet("background:rgba(0,0,0,200);color:#ffd228;border:1px solid #ffd228;")
        self.setMinimumWidth(220)
        self.adjustSize()
        x = min(max(0, at.x()), max(0, parent.width() - self.width()))
        y = min(max(0, at.y()), max(0, parent.height() - self.height()))
        self.move(x, y)
        self._done = False
        self.show()
        self.setFocus(Qt.FocusReason.OtherFocusReason)

    def finish(self, keep: bool = True) -> None:
        """End editing (idempotent): emit the text once, then remove the box."""
        if self._done:
            return
        self._done = True
        self.finished.emit(self.text(), keep)
        self.hide()
        self.deleteLater()

    def keyPressEvent(self, e: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.finish(True)
            return
        if e.key() == Qt.Key.Key_Escape:
            self.finish(False)
            return
        super().keyPressEvent(e)

    def focusOutEvent(self, e: QFocusEvent) -> None:  # noqa: N802 - Qt override
        super().focusOutEvent(e)
        if e.reason() != Qt.FocusReason.PopupFocusReason:  # the context menu of the box keeps it open
            self.finish(True)
