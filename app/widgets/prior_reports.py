"""Prior reports of the open study as they came from the PACS: read-only, never editable.

A list of the study's report documents (SR of any template, encapsulated PDF; AI results and measurement
reports marked as such) and the selected one's text, or for a PDF its pages rendered by poppler's
pdftoppm (shipped with the workstation's system packages) in a background thread.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QLabel,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.priors.documents import PriorDocument
from viewer.widgets.background import BackgroundRunner


def render_pdf_pages(pdf: bytes, max_pages: int = 4, dpi: int = 80) -> list[bytes]:
    """PNG bytes of the first pages (pdftoppm); [] when poppler is missing or the PDF is unreadable."""
    exe = shutil.which("pdftoppm")
    if exe is None:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "doc.pdf"
        src.write_bytes(pdf)
        proc = subprocess.run([exe, "-png", "-r", str(dpi), "-l", str(max_pages), str(src), str(Path(tmp) / "p")],
                              capture_output=True, timeout=60)
        if proc.returncode != 0:
            return []
        return [p.read_bytes() for p in sorted(Path(tmp).glob("p*.png"))]


class PriorReportsPanel(QWidget):
    """Shows a study's prior documents; `set_documents` replaces them (an empty list shows a note)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.documents: list[PriorDocument] = []
        self._runner = BackgroundRunner(self)
        self.banner = QLabel("Reports received from the PACS: read-only.")
        self.banner.setStyleSheet("background:#e8eef7; color:#1b3a66; padding:4px;")
        self.list = QListWidget()
        self.text = QTextBrowser()
        self.text.setReadOnly(True)
        self.pages = QWidget()
        self.pages_layout = QVBoxLayout(self.pages)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.pages)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.text)
        self.stack.addWidget(scroll)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.list)
        split.addWidget(self.stack)
        split.setStretchFactor(1, 4)
        lay = QVBoxLayout(self)
        lay.addWidget(self.banner)
        lay.addWidget(split, 1)
        self.list.currentRowChanged.connect(self._show)

    def set_documents(self, documents: list[PriorDocument]) -> None:
        self.documents = list(documents)
        self.list.clear()
        for d in self.documents:
            label = f"{d.date or '?'}  {d.title}  [{d.status.upper()}]" + (
                "" if d.is_report else f"  ({d.role_label})")
            self.list.addItem(QListWidgetItem(label))
        if self.documents:
            self.list.setCurrentRow(0)
        else:
            self.text.setPlainText("No prior report for this study.")
            self.stack.setCurrentWidget(self.text)

    def _show(self, row: int) -> None:
        if not 0 <= row < len(self.documents):
            return
        d = self.documents[row]
        if d.kind == "sr":
            header = f"{d.title} - {d.status.upper()}" + (f" - verified by {d.author}" if d.author else "")
            self.text.setPlainText(f"{header}\n\n{d.text}")
            self.stack.setCurrentWidget(self.text)
            return
        self._clear_pages()
        self.pages_layout.addWidget(QLabel("Rendering the PDF..."))
        self.stack.setCurrentIndex(1)
        uid, pdf = d.sop_instance_uid, d.pdf
        self._runner.start(lambda _job: render_pdf_pages(pdf), on_done=lambda pngs: self._pages_ready(uid, pngs),
                           on_error=lambda _exc: self._pages_ready(uid, []))

    def _clear_pages(self) -> None:
        while self.pages_layout.count():
            w = self.pages_layout.takeAt(0).widget()
            if w is not None:
                w.deleteLater()

    def _pages_ready(self, uid: str, pngs: list) -> None:
        row = self.list.currentRow()
        if not (0 <= row < len(self.documents)) or self.documents[row].sop_instance_uid != uid:
            return
        self._clear_pages()
        if not pngs:
            self.pages_layout.addWidget(QLabel("This PDF cannot be shown here (poppler's pdftoppm is missing or "
                                               "the file is damaged)."))
        for png in pngs:
            pix = QPixmap()
            pix.loadFromData(png, "PNG")
            label = QLabel()
            label.setPixmap(pix)
            self.pages_layout.addWidget(label)

    def shown_page_count(self) -> int:
        return sum(1 for i in range(self.pages_layout.count())
                   if isinstance(self.pages_layout.itemAt(i).widget(), QLabel)
                   and not self.pages_layout.itemAt(i).widget().pixmap().isNull())

    def wait_idle(self) -> None:
        """Block until the PDF renderings started here have ended (their pages arrive with the event loop)."""
        self._runner.wait()
