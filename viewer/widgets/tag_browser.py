"""The DICOM tag browser: every element of the current image in a tree, filtered as the user types."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QDialog, QLabel, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from viewer.models.tag_tree import TagNode, dataset_nodes, filter_nodes

COLUMNS = ("Tag", "Keyword", "VR", "Value")
DEBOUNCE_ABOVE = 3000  # rows


class TagBrowser(QWidget):
    """Search box + tree. `set_image` (a DicomImage) or `set_dataset` (a pydicom Dataset) fills it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search tag (0010,0010), keyword or value\u2026")
        self.search.setClearButtonEnabled(True)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.status = QLabel(self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.search)
        lay.addWidget(self.tree, 1)
        lay.addWidget(self.status)
        self._nodes: list[TagNode] = []
        self._total = 0
        # big enhanced multi-frame headers (10k+ rows): filter after a short pause in typing, not per key
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(150)
        self._debounce.timeout.connect(self._refill)
        self.search.textChanged.connect(self._text_changed)

    def set_image(self, image: Any) -> None:
        self.set_dataset(getattr(image, "dataset", None))

    def set_dataset(self, ds: Any) -> None:
        self._nodes = dataset_nodes(ds) if ds is not None else []
        self._total = sum(n.count() for n in self._nodes)
        self._refill()

    def _text_changed(self) -> None:
        if self._total > DEBOUNCE_ABOVE:
            self._debounce.start()
        else:
            self._refill()

    def visible_tags(self) -> list[str]:
        """Tags of all rows now in the tree (depth first), for tests and copy/export."""
        out: list[str] = []

        def walk(item: QTreeWidgetItem) -> None:
            for i in range(item.childCount()):
                child = item.child(i)
                out.append(child.text(0) or child.text(1))
                walk(child)

        walk(self.tree.invisibleRootItem())
        return out

    def _refill(self) -> None:
        text = self.search.text()
        nodes = filter_nodes(self._nodes, text)
        self.tree.setUpdatesEnabled(False)
        self.tree.clear()
        self.tree.addTopLevelItems([self._item(n) for n in nodes])
        if text.strip():
            self.tree.expandAll()
        self.tree.setUpdatesEnabled(True)
        for c in range(3):
            self.tree.resizeColumnToContents(c)
        total = self._total
        shown = sum(n.count() for n in nodes)
        self.status.setText(f"{shown} of {total} elements" if text.strip() else f"{total} elements")

    def _item(self, n: TagNode) -> QTreeWidgetItem:
        item = QTreeWidgetItem([n.tag, n.keyword, n.vr, n.value])
        item.setToolTip(1, n.name)
        item.setToolTip(3, n.value)
        item.addChildren([self._item(c) for c in n.children])
        return item


class TagBrowserDialog(QDialog):
    """A non-modal window around TagBrowser, so the radiologist can keep scrolling the images."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("DICOM tags")
        self.resize(760, 640)
        self.browser = TagBrowser(self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.browser)

    def set_image(self, image: Any) -> None:
        title = getattr(getattr(image, "path", None), "name", "") if image is not None else ""
        self.setWindowTitle(f"DICOM tags \u2014 {title}" if title else "DICOM tags")
        self.browser.set_image(image)
