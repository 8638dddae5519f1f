"""Keyboard shortcuts: one table of every key (window menus, viewer, report editor), a cheat-sheet dialog,
and remapping stored in settings (`key_bindings`: {"menu:<action>": key, "viewer:<command>": key}).

Window keys and viewer keys can be remapped; the report editor's keys (F6, Ctrl+Space, Ctrl+Z...) and the
preset digits are listed but fixed. A key already used elsewhere is refused with the name of its owner.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QKeySequenceEdit,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.models import tools

SETTINGS_KEY = "key_bindings"
EDITOR_KEYS: tuple[tuple[str, str], ...] = (
    ("F6 / Shift+F6", "Next / previous template [field] (a pick-list opens its choices)"),
    ("Ctrl+Space", "Expand the macro named before the cursor, or list macros"),
    ("Ctrl+Z / Ctrl+Y", "Undo / redo in the report"),
    ("Ctrl+S", "Save the report now (it also saves by itself within a second)"),
    ("Tab / Shift+Tab", "Next / previous report section"),
)
FIXED_VIEWER_KEYS: tuple[tuple[str, str], ...] = (
    ("1", "Header window (W/L from the image)"),
    ("2-9", "Window presets of the image's modality (HU presets on CT, contrast presets otherwise)"),
    ("Mouse wheel / Ctrl+wheel", "Scroll through images / zoom"),
    ("Right drag / middle drag", "Window/level / pan"),
)


@dataclass(frozen=True)
class Binding:
    area: str  # "Window", "Viewer", "Report", "Viewer (fixed)"
    ident: str  # "menu:<name>" / "viewer:<command>" / "" for fixed rows
    label: str
    key: str
    default: str

    @property
    def editable(self) -> bool:
        return bool(self.ident)


def _overrides(settings) -> dict[str, str]:
    raw = settings.get(SETTINGS_KEY, {}) if settings is not None else {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


_MENU_DEFAULTS: dict[str, str] = {}


def apply_menu_bindings(actions: dict[str, QAction], settings) -> None:
    """Set each named QAction's key from settings (the defaults are remembered the first time)."""
    over = _overrides(settings)
    for name, act in actions.items():
        _MENU_DEFAULTS.setdefault(name, act.shortcut().toString())
        key = over.get(f"menu:{name}", _MENU_DEFAULTS[name])
        act.setShortcut(QKeySequence(key))
    apply_viewer_bindings(settings)


def apply_viewer_bindings(settings) -> list[str]:
    over = {k.split(":", 1)[1]: v for k, v in _overrides(settings).items() if k.startswith("viewer:")}
    return tools.set_key_overrides(over)


def all_bindings(actions: dict[str, QAction]) -> list[Binding]:
    rows = []
    for name, act in actions.items():
        rows.append(Binding("Window", f"menu:{name}", act.text().replace("&", "").rstrip("."),
                            act.shortcut().toString(), _MENU_DEFAULTS.get(name, act.shortcut().toString())))
    for command, label in tools.COMMAND_LABELS.items():
        keys = tools.keys_for(command)
        default = [k for k, c in tools.DEFAULT_COMMAND_KEYS.items() if c == command]
        rows.append(Binding("Viewer", f"viewer:{command}", label, ", ".join(keys), ", ".join(default)))
    rows += [Binding("Viewer (fixed)", "", label, key, key) for key, label in FIXED_VIEWER_KEYS]
    rows += [Binding("Report", "", label, key, key) for key, label in EDITOR_KEYS]
    return rows


def cheat_sheet_html(actions: dict[str, QAction]) -> str:
    """The shortcut list as an HTML table (Help > Keyboard shortcuts, and the user guide)."""
    out, area = [], None
    for b in all_bindings(actions):
        if not b.key:
            continue
        if b.area != area:
            if area is not None:
                out.append("</table>")
            area = b.area
            out.append(f"<h3>{html.escape(area)}</h3><table cellpadding='3'>")
        out.append(f"<tr><td><b>{html.escape(b.key)}</b></td><td>{html.escape(b.label)}</td></tr>")
    out.append("</table>")
    return "".join(out)


class ShortcutsDialog(QDialog):
    """The cheat-sheet with remapping: select a row, press the new key in the box, Assign; Save keeps it."""

    def __init__(self, actions: dict[str, QAction], settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.actions, self.settings = actions, settings
        self.pending = dict(_overrides(settings))
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter: type part of an action or a key")
        self.filter.textChanged.connect(self._apply_filter)
        self.table = QTableWidget(0, 3)
        self.table.setObjectName("shortcutTable")
        self.table.setHorizontalHeaderLabels(["Area", "Action", "Key"])
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.itemSelectionChanged.connect(self._row_changed)
        self.key_edit = QKeySequenceEdit()
        self.key_edit.setObjectName("newKey")
        self.assign_button = QPushButton("Assign")
        self.assign_button.clicked.connect(self.assign_from_edit)
        self.default_button = QPushButton("Default")
        self.default_button.clicked.connect(self.reset_selected)
        self.message = QLabel()
        self.message.setWordWrap(True)
        edit_row = QHBoxLayout()
        edit_row.addWidget(QLabel("New key:"))
        edit_row.addWidget(self.key_edit, 1)
        edit_row.addWidget(self.assign_button)
        edit_row.addWidget(self.default_button)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Close)
        buttons.button(QDialogButtonBox.StandardButton.Save).setAutoDefault(False)
        buttons.button(QDialogButtonBox.StandardButton.Close).setAutoDefault(False)
        self.assign_button.setAutoDefault(False)
        self.default_button.setAutoDefault(False)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.filter)
        lay.addWidget(self.table, 1)
        lay.addLayout(edit_row)
        lay.addWidget(self.message)
        lay.addWidget(buttons)
        self.resize(760, 640)
        self._rows: list[Binding] = []
        self.refresh()

    def refresh(self) -> None:
        self._rows = all_bindings(self.actions)
        self.table.setRowCount(0)
        for b in self._rows:
            key = self._pending_key(b)
            r = self.table.rowCount()
            self.table.insertRow(r)
            for c, text in enumerate((b.area, b.label, key)):
                item = QTableWidgetItem(text)
                if not b.editable:
                    item.setForeground(Qt.GlobalColor.darkGray)
                self.table.setItem(r, c, item)
        self._apply_filter(self.filter.text())

    def _pending_key(self, b: Binding) -> str:
        return self.pending.get(b.ident, b.key) if b.editable else b.key

    def _apply_filter(self, text: str) -> None:
        text = text.lower().strip()
        for r in range(self.table.rowCount()):
            row = " ".join(self.table.item(r, c).text().lower() for c in range(3))
            self.table.setRowHidden(r, bool(text) and text not in row)

    def _selected(self) -> Binding | None:
        rows = {i.row() for i in self.table.selectedItems()}
        return self._rows[next(iter(rows))] if rows else None

    def _row_changed(self) -> None:
        b = self._selected()
        editable = b is not None and b.editable
        for w in (self.key_edit, self.assign_button, self.default_button):
            w.setEnabled(editable)
        if b is not None and not b.editable:
            self.message.setText("This key is fixed.")

    def owner_of(self, key: str, ident: str) -> str:
        """The action already using `key` ('' when free)."""
        if not key:
            return ""
        for b in self._rows:
            if b.ident == ident:
                continue
            keys = [k.strip() for k in self._pending_key(b).split(",")]
            if key in keys and (b.area != "Viewer (fixed)" or key.isdigit()):
                return f"{b.area}: {b.label}"
        return ""

    def assign(self, ident: str, key: str) -> bool:
        """Give `ident` the key `key` (refused, with a message, when another action has it)."""
        owner = self.owner_of(key, ident)
        if owner:
            self.message.setText(f"{key} is already used by {owner}. Pick another key or change that one first.")
            return False
        self.pending[ident] = key
        self.message.setText(f"{key or '(none)'} assigned. Save to keep it.")
        self.refresh()
        return True

    def assign_from_edit(self) -> bool:
        b = self._selected()
        if b is None or not b.editable:
            return False
        key = self.key_edit.keySequence().toString()
        return self.assign(b.ident, key)

    def reset_selected(self) -> None:
        b = self._selected()
        if b is not None and b.editable:
            self.pending.pop(b.ident, None)
            self.refresh()

    def save(self) -> None:
        changed = {k: v for k, v in self.pending.items() if v != next(
            (b.default for b in self._rows if b.ident == k), None)}
        self.settings.set(SETTINGS_KEY, changed)
        try:
            self.settings.save()
        except OSError as exc:
            self.message.setText(f"Could not save: {exc}")
            return
        apply_menu_bindings(self.actions, self.settings)
        self.accept()
