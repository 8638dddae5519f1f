"""The measurement list of the active viewport: name, value and image for each; rename, select, delete.
Arrows and text notes are listed too: their name is their label / text, renaming edits it.

Selecting a row selects the shape on the image (drag it there to move it); double-click or F2 on the
name renames it; Delete removes the selected measurement. The rows are read from, and the edits made on,
the viewport's Qt-free model (`Viewport.measurements_model`, viewer.models.measurements); the viewport's
signals say when to read again.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.models import measure_tool

INDEX_ROLE = Qt.ItemDataRole.UserRole + 3


class MeasurementList(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewport: Any = None
        self.title = QLabel("Measurements")
        self.title.setStyleSheet("font-weight:bold;")
        self.table = QTableWidget(0, 3)
        self.table.setObjectName("measurementTable")
        self.table.setHorizontalHeaderLabels(["Name", "Value", "Image"])
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.setWordWrap(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.itemChanged.connect(self._item_changed)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the selected measurement (Del)")
        self.delete_button.clicked.connect(self.delete_selected)
        self.empty = QLabel("Draw with Distance (D), Angle (G), Rect (B) or Ellipse (O); point with Arrow (X), "
                            "write with Text (N). Ctrl+Z in the image undoes.")
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color:#888;")
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.delete_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.title)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.empty)
        lay.addLayout(row)
        self._filling = False

    def set_viewport(self, viewport: Any) -> None:
        if self.viewport is viewport:
            self.refresh()
            return
        if self.viewport is not None:
            try:
                self.viewport.measurementsChanged.disconnect(self.refresh)
                self.viewport.imageChanged.disconnect(self.refresh)
            except (RuntimeError, TypeError):
                pass
        self.viewport = viewport
        if viewport is not None:
            viewport.measurementsChanged.connect(self.refresh)
            viewport.imageChanged.connect(self.refresh)
        self.refresh()

    def refresh(self, *_: Any) -> None:
        vp = self.viewport
        self._filling = True
        try:
            self.table.setRowCount(0)
            if vp is None:
                return
            model = vp.measurements_model
            labels = model.labels(vp.current_image())
            for i, m in enumerate(model.items()):
                text = labels[i]
                value = text.split("\n", 1)[1] if getattr(m, "label", "") and "\n" in text else text
                if measure_tool.is_annotation(m):  # an arrow or note has no value: say what it is
                    value = measure_tool.KIND_NAMES[m.kind]
                r = self.table.rowCount()
                self.table.insertRow(r)
                name = QTableWidgetItem(getattr(m, "label", "") or f"{m.kind} {i + 1}")
                name.setData(INDEX_ROLE, i)
                val = QTableWidgetItem(value.replace("\n", "  "))
                val.setFlags(val.flags() & ~Qt.ItemFlag.ItemIsEditable)
                frame = QTableWidgetItem(str(getattr(m, "frame", 0) + 1))
                frame.setFlags(frame.flags() & ~Qt.ItemFlag.ItemIsEditable)
                for c, item in enumerate((name, val, frame)):
                    self.table.setItem(r, c, item)
            sel = model.selected
            if sel is not None and sel < self.table.rowCount():
                self.table.selectRow(sel)
        finally:
            self._filling = False
        n = self.table.rowCount()
        self.empty.setVisible(n == 0)
        self.delete_button.setEnabled(n > 0)
        self.title.setText(f"Measurements ({n})" if n else "Measurements")

    def _selection_changed(self) -> None:
        if self._filling or self.viewport is None:
            return
        rows = {i.row() for i in self.table.selectedItems()}
        self.viewport.measurements_model.select(next(iter(rows)) if rows else None)

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or self.viewport is None or item.column() != 0:
            return
        self.viewport.measurements_model.rename(item.row(), item.text())
        self.changed.emit()

    def delete_selected(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedItems()})
        if self.viewport is None or not rows:
            return
        self.viewport.measurements_model.delete(rows[0])
        self.changed.emit()

    def keyPressEvent(self, e) -> None:  # noqa: N802 - Qt override
        if e.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.table.state() != \
                QAbstractItemView.State.EditingState:
            self.delete_selected()
            return
        super().keyPressEvent(e)
