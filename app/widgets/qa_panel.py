"""Chat about the open study: type a question, get the engine's answer with its confidence.

History comes from the database per study. A question is never lost: it shows at once in the chat,
and if the job fails the text goes back into the input box (unless something new was typed there).
Where the engine has an explain hook, a small map of the regions it used is shown under the chat.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QTextBrowser, QVBoxLayout, QWidget

from app.ai.questions import QaService
from app.ai.study_images import StudyImage, order_for_engine

MAP_SIZE = 160


def answer_detail(m: dict[str, Any]) -> str:
    """' (probability of pleural effusion 12%, calibrated; 6% of training studies)' for a reading's answer,
    ' (confidence 80%)' for other answers, '' when there is none."""
    p, finding = m.get("probability"), m.get("finding")
    if p is not None and finding:
        cal = "calibrated" if m.get("calibrated") else "not calibrated"
        prev = m.get("prevalence")
        usual = f"; {prev:.0%} of training studies" if prev is not None else ""
        return f" (probability of {str(finding).lower()} {p:.0%}, {cal}{usual})"
    conf = m.get("confidence")
    return f" (confidence {conf:.0%})" if conf is not None else ""


class QaPanel(QWidget):
    """Ask about the open study. An answer the input gate stopped offers "Ask anyway", which asks for
    confirmation (`confirm_override`, replaceable in tests) and is audited under `user_provider()`."""

    def __init__(self, qa: QaService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.qa = qa
        self.user_provider: Any = lambda: None  # the main window sets it: () -> AuthSession | None
        self.confirm_override: Any = self._confirm_override
        self.study_uid = ""
        self.images: list[StudyImage] = []
        self.pending: dict[str, str] = {}  # job id ("" for none) -> question
        self.messages: list[dict[str, Any]] = []
        self.errors: list[tuple[str, str]] = []

        self.chat = QTextBrowser()
        self.chat.setOpenExternalLinks(False)
        self.chat.setOpenLinks(False)
        self.chat.anchorClicked.connect(self._on_link)
        self.input = QLineEdit()
        self.input.setPlaceholderText("Ask about this study, e.g. 'Is there a pleural effusion?'")
        self.input.returnPressed.connect(lambda: self.ask())
        self.ask_button = QPushButton("Ask")
        self.ask_button.clicked.connect(lambda _checked=False: self.ask())  # clicked(bool) is not a question
        self.map_label = QLabel()
        self.map_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.map_label.setToolTip("Image regions the engine attended to for the last answer")
        self.map_label.hide()
        self.map_caption = QLabel("Image regions the engine attended to for the last answer (red)")
        self.map_caption.setStyleSheet("color: #555")
        self.map_caption.hide()
        row = QHBoxLayout()
        row.addWidget(self.input, 1)
        row.addWidget(self.ask_button)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Questions about this study"))
        lay.addWidget(self.chat, 1)
        lay.addWidget(self.map_caption)
        lay.addWidget(self.map_label)
        lay.addLayout(row)
        self._set_enabled(False)
        qa.answered.connect(self._on_answered)
        qa.failed.connect(self._on_failed)
        qa.regionMap.connect(self._on_map)

    def set_study(self, study_uid: str, images: list[StudyImage]) -> None:
        self.study_uid, self.images = study_uid, list(images)
        self.messages = self.qa.history(study_uid) if study_uid else []
        self.pending.clear()
        self.errors.clear()
        self.map_label.hide()
        self.map_caption.hide()
        self._set_enabled(bool(study_uid))
        self._render()

    def ask(self, question: str | None = None, *, override: bool = False) -> str:
        """Send the typed question (or `question`); returns the job id ("" when answered at once or nothing to
        ask). `override` runs it although the input gate put the study out of scope."""
        typed = question is None
        question = (self.input.text() if typed else question).strip()
        if not question or not self.study_uid:
            return ""
        if typed:
            self.input.clear()
        self.pending["?"] = question  # shown at once, even before the engine has it
        self._render()
        user = self.user_provider()
        job_id = self.qa.ask(self.study_uid, question, self.images, override=override,
                             username=getattr(user, "username", "") or "")
        self.pending.pop("?", None)
        if job_id:
            self.pending[job_id] = question
        self._render()
        return job_id

    def ask_anyway(self, question: str) -> str:
        """Ask again past the input gate, after the user confirmed; "" when they did not."""
        if not self.confirm_override(question):
            return ""
        return self.ask(question, override=True)

    def _confirm_override(self, question: str) -> bool:
        from PySide6.QtWidgets import QMessageBox

        answer = QMessageBox.warning(
            self, "Outside the engine's scope",
            "The engine was not trained on images like this one, so its answer may be meaningless.\n\n"
            f"Ask \u201c{question}\u201d anyway? This is recorded in the audit log under your name.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _on_link(self, url) -> None:
        text = url.toString()
        if text.startswith("override:"):
            k = int(text.split(":", 1)[1])
            if 0 <= k < len(self.messages):
                self.ask_anyway(self.messages[k]["question"])

    # -- events ---------------------------------------------------------------------------------------
    def _on_answered(self, study_uid: str, message: dict[str, Any]) -> None:
        if study_uid != self.study_uid:
            return
        self._drop_pending(message["question"])
        self.messages.append(message)
        self._render()

    def _on_failed(self, study_uid: str, question: str, error: str) -> None:
        if study_uid != self.study_uid:
            return
        self._drop_pending(question)
        self.errors.append((question, error))
        if not self.input.text().strip():
            self.input.setText(question)  # nothing the radiologist typed is lost
        self._render()

    def _on_map(self, study_uid: str, question: str, amap: np.ndarray) -> None:
        if study_uid != self.study_uid or not self.images:
            return
        base = order_for_engine(self.images)[0].pixels
        self.map_label.setPixmap(QPixmap.fromImage(overlay_image(base, amap)))
        self.map_caption.setText(f"Image regions the engine attended to for: \"{question}\" (red)")
        self.map_label.show()
        self.map_caption.show()

    def _drop_pending(self, question: str) -> None:
        for key, q in list(self.pending.items()):
            if q == question:
                del self.pending[key]
                break

    def _set_enabled(self, on: bool) -> None:
        self.input.setEnabled(on)
        self.ask_button.setEnabled(on)

    def _render(self) -> None:
        parts = []
        for k, m in enumerate(self.messages):
            detail = answer_detail(m)
            conf_text = f" <span style='color:#666'>{html.escape(detail)}</span>" if detail else ""
            style = " style='color:#8a4b00'" if m.get("refused") or m.get("input_out_of_scope") else ""
            anyway = (f" <a href='override:{k}'>Ask anyway\u2026</a>" if m.get("input_out_of_scope") else "")
            parts.append(f"<p><b>You:</b> {html.escape(m['question'])}<br><b>Engine:</b> "
                         f"<span{style}>{html.escape(m['answer'])}</span>{conf_text}{anyway}</p>")
        for question, error in self.errors:
            parts.append(f"<p><b>You:</b> {html.escape(question)}<br><span style='color:#b00020'>"
                         f"Not answered: {html.escape(error)}</span></p>")
        for question in self.pending.values():
            parts.append(f"<p><b>You:</b> {html.escape(question)}<br><i>thinking...</i></p>")
        if not parts:
            parts.append("<p style='color:#666'>No questions yet.</p>" if self.study_uid else
                         "<p style='color:#666'>Open a study to ask about it.</p>")
        self.chat.setHtml("".join(parts))
        self.chat.verticalScrollBar().setValue(self.chat.verticalScrollBar().maximum())

    def transcript(self) -> str:
        """The chat as plain text (tests, copy to clipboard)."""
        return self.chat.toPlainText()


def overlay_image(image: np.ndarray, amap: np.ndarray, size: int = MAP_SIZE) -> QImage:
    """Grayscale image with the 0..1 map in red on top, scaled to `size` pixels square."""
    img = np.asarray(image, dtype=np.float32)
    lo, hi = float(img.min()), float(img.max())
    gray = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    ys = (np.arange(size) * gray.shape[0] / size).astype(int)
    xs = (np.arange(size) * gray.shape[1] / size).astype(int)
    g = gray[ys][:, xs]
    m = np.asarray(amap, dtype=np.float32)
    my = (np.arange(size) * m.shape[0] / size).astype(int)
    mx = (np.arange(size) * m.shape[1] / size).astype(int)
    heat = np.clip(m[my][:, mx], 0, 1)
    rgb = np.stack([g * (1 - 0.5 * heat) + 0.5 * heat, g * (1 - 0.5 * heat), g * (1 - 0.5 * heat)], axis=-1)
    data = np.ascontiguousarray((rgb * 255).astype(np.uint8))
    return QImage(data.data, size, size, 3 * size, QImage.Format.Format_RGB888).copy()
