"""Template fields and AutoText in the report's text boxes: jump to the next [field], pick from its list,
expand a macro name; every change is one undo step.

Keys (in any section): F6 next field, Shift+F6 previous field, Ctrl+Space expand the macro name before
the cursor (or list the macros that start with it). A pick-list opens as a menu under the field: arrows and
Enter choose, Escape leaves the field selected so typing replaces it.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QTextCursor
from PySide6.QtWidgets import QMenu, QPlainTextEdit, QWidget

from app.reports.fields import Field, field_at, fields_in, fill_defaults
from app.reports.macros import Macro, word_before

TYPE_OWN = "..."  # the pick-list choice that means "let me type"


def replace_range(edit: QPlainTextEdit, start: int, end: int, text: str, select_after: bool = False) -> None:
    """Replace characters [start, end) of `edit` with `text` as one undo step."""
    cur = edit.textCursor()
    cur.beginEditBlock()
    cur.setPosition(start)
    cur.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
    cur.insertText(text)
    cur.endEditBlock()
    if select_after:
        cur.setPosition(start)
        cur.setPosition(start + len(text), QTextCursor.MoveMode.KeepAnchor)
    edit.setTextCursor(cur)


def replace_all_text(edit: QPlainTextEdit, text: str) -> None:
    """Replace the whole text as one undo step (so Undo brings the old text back)."""
    cur = edit.textCursor()
    cur.beginEditBlock()
    cur.select(QTextCursor.SelectionType.Document)
    cur.insertText(text)
    cur.endEditBlock()


class FieldAssist(QObject):
    """Field navigation and macro expansion over the editor's ordered text boxes."""

    message = Signal(str)  # a hint for the status line ("no more fields", "no macro named ...")

    def __init__(self, editors: Callable[[], list[QPlainTextEdit]], macros: Callable[[], list[Macro]],
                 parent: QWidget) -> None:
        super().__init__(parent)
        self._editors = editors
        self._macros = macros
        self._parent = parent
        self.menu: QMenu | None = None  # the pick-list / macro menu on screen (tests drive it)

    # -- fields ----------------------------------------------------------------------------------------
    def _writable(self) -> list[QPlainTextEdit]:
        return [e for e in self._editors() if not e.isReadOnly() and not e.isHidden()]

    def _focused(self, editors: list[QPlainTextEdit]) -> QPlainTextEdit | None:
        """The box with the keyboard focus (or the last one that had it while the window is inactive)."""
        last = self._parent.focusWidget()
        return next((e for e in editors if e.hasFocus()), last if last in editors else None)

    def next_field(self, backwards: bool = False) -> Field | None:
        """Select the next (or previous) field, moving on to the following sections; wraps round."""
        editors = self._writable()
        if not editors:
            return None
        current = self._focused(editors) or editors[0]
        i = editors.index(current)
        order = editors[i:] + editors[:i] if not backwards else editors[i::-1] + editors[:i:-1]
        for n, edit in enumerate(order):
            found = fields_in(edit.toPlainText())
            if not found:
                continue
            cur = edit.textCursor()
            if n == 0:
                if backwards:
                    cands = [f for f in found if f.end <= cur.selectionStart()]
                    pick = cands[-1] if cands else None
                else:
                    cands = [f for f in found if f.start >= cur.selectionEnd()]
                    pick = cands[0] if cands else None
            else:
                pick = found[-1] if backwards else found[0]
            if pick is None:
                continue
            self.select(edit, pick)
            return pick
        # only fields before the cursor in the first box: wrap within it
        found = fields_in(current.toPlainText())
        if found:
            pick = found[-1] if backwards else found[0]
            self.select(current, pick)
            return pick
        self.message.emit("No [fields] left to fill.")
        return None

    def select(self, edit: QPlainTextEdit, field: Field, offer_choices: bool = True) -> None:
        edit.setFocus()
        cur = edit.textCursor()
        cur.setPosition(field.start)
        cur.setPosition(field.end, QTextCursor.MoveMode.KeepAnchor)
        edit.setTextCursor(cur)
        edit.ensureCursorVisible()
        if offer_choices and field.choices:
            self._offer_choices(edit, field)

    def _offer_choices(self, edit: QPlainTextEdit, field: Field) -> None:
        menu = QMenu(self._parent)
        menu.setObjectName("fieldChoices")
        for choice in field.choices:
            label = "Type my own…" if choice == TYPE_OWN else choice
            act = QAction(label.replace("&", "&&"), menu)
            act.triggered.connect(lambda _=False, c=choice, e=edit, f=field: self.choose(e, f, c))
            menu.addAction(act)
        menu.setActiveAction(menu.actions()[0])
        self._show_menu(menu, edit)

    def choose(self, edit: QPlainTextEdit, field: Field, choice: str) -> None:
        """Put `choice` in place of `field` (if the field is still there); TYPE_OWN leaves a blank to type."""
        now = field_at(edit.toPlainText(), field.start)
        if now is None or now.start != field.start or now.body != field.body:
            return
        replace_range(edit, field.start, field.end, "" if choice == TYPE_OWN else choice)
        edit.setFocus()

    def fill_defaults(self) -> int:
        """Every pick-list in every writable section gets its first choice; returns how many were filled."""
        n = 0
        for edit in self._writable():
            text = edit.toPlainText()
            filled = fill_defaults(text)
            if filled != text:
                n += sum(1 for f in fields_in(text) if f.choices)
                replace_all_text(edit, filled)
        return n

    # -- macros ----------------------------------------------------------------------------------------
    def expand_macro(self) -> bool:
        """Expand the macro named by the word before the cursor; without an exact match, list candidates."""
        edit = self._focused(self._writable())
        if edit is None:
            self.message.emit("Put the cursor in a report section to insert a macro.")
            return False
        cur = edit.textCursor()
        start, word = word_before(edit.toPlainText(), cur.position())
        macros = self._macros()
        exact = next((m for m in macros if m.name.lower() == word.lower()), None) if word else None
        if exact is not None:
            self.insert_macro(edit, exact, start, cur.position())
            return True
        candidates = [m for m in macros if m.name.lower().startswith(word.lower())] if word else macros
        if not candidates:
            self.message.emit(f"No macro named “{word}”. Tools > Templates and macros lists and edits them.")
            candidates = macros
            start = cur.position()
        self.offer_macros(edit, candidates, start, cur.position())
        return False

    def offer_macros(self, edit: QPlainTextEdit, macros: list[Macro], start: int, end: int) -> None:
        menu = QMenu(self._parent)
        menu.setObjectName("macroChoices")
        for m in macros:
            preview = m.text if len(m.text) <= 60 else m.text[:57] + "…"
            act = QAction(f"{m.name} — {preview}".replace("&", "&&"), menu)
            act.triggered.connect(lambda _=False, mm=m: self.insert_macro(edit, mm, start, end))
            menu.addAction(act)
        if menu.actions():
            menu.setActiveAction(menu.actions()[0])
            self._show_menu(menu, edit)

    def insert_macro(self, edit: QPlainTextEdit, macro: Macro, start: int, end: int) -> None:
        """Replace [start, end) with the macro text; the first field inside it is selected."""
        replace_range(edit, start, end, macro.text)
        inside = [f for f in fields_in(edit.toPlainText()) if start <= f.start < start + len(macro.text)]
        if inside:
            self.select(edit, inside[0])
        else:
            cur = edit.textCursor()
            cur.setPosition(start + len(macro.text))
            edit.setTextCursor(cur)
            edit.setFocus()

    def _show_menu(self, menu: QMenu, edit: QPlainTextEdit) -> None:
        if self.menu is not None:
            self.menu.close()
            self.menu.deleteLater()
        self.menu = menu
        rect = edit.cursorRect()
        menu.popup(edit.viewport().mapToGlobal(rect.bottomLeft()))
