"""The "Similar studies" panel: the K studies most similar to the open one by the engine's image embedding,
the site's own signed studies first, then (for development) curated training cases; each with its report,
labels and a side-by-side view. Signed studies are indexed as they are signed.

Embedding and search run in the engine worker process (engines.similar.worker_jobs, through app.model_runner),
waited for in a background job (viewer.widgets.background); the GUI never loads the model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.ai.similar_store import cases_dir, cases_url, dev_index_dir
from app.settings import Settings
from engines.worker.job_results import SimilarCases
from engines.worker.requests import IndexCaseRequest, SimilarRequest
from viewer.widgets.background import BackgroundRunner, Job

THUMB = 220


def _pixmap(pixels: np.ndarray | None) -> QPixmap:
    if pixels is None:
        return QPixmap()
    arr = np.asarray(pixels, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr.mean(axis=2)
    lo, hi = float(arr.min()), float(arr.max())
    u8 = np.ascontiguousarray(((arr - lo) / (hi - lo) * 255 if hi > lo else arr * 0).astype(np.uint8))
    img = QImage(u8.data, u8.shape[1], u8.shape[0], u8.strides[0], QImage.Format.Format_Grayscale8).copy()
    return QPixmap.fromImage(img).scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.SmoothTransformation)


def load_case_image(hit: dict[str, Any]) -> np.ndarray | None:
    """A development case's image from its file (site cases need the study database: see `case_image`)."""
    ref = str(hit.get("image_ref") or "")
    if not ref or not Path(ref).is_file():
        return None
    from PIL import Image

    with Image.open(ref) as im:
        return np.asarray(im.convert("L"))


class SimilarPanel(QWidget):
    """`runner` runs worker jobs (app.model_runner); `case_image(hit)` gives a hit's pixels (site studies come
    from the database; default: development images from their files)."""

    searched = Signal(int)  # hits shown
    indexed = Signal(str)  # study uid added to the site index

    def __init__(self, runner: Any, settings: Settings | None = None,
                 case_image: Callable[[dict[str, Any]], np.ndarray | None] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner, self.settings = runner, settings
        self.case_image = case_image or load_case_image
        self.study_uid = ""
        self.images: list[np.ndarray] = []
        self.hits: list[dict[str, Any]] = []
        self._runner = BackgroundRunner(self)
        self._search: Job | None = None

        self.find_button = QPushButton("Find similar studies")
        self.find_button.setEnabled(False)
        self.find_button.clicked.connect(self.find_similar)
        self.k = QSpinBox()
        self.k.setRange(1, 50)
        self.k.setValue(int(settings.get("similar_k", 5)) if settings else 5)
        self.k.setPrefix("K = ")
        self.auto = QCheckBox("On open")
        self.auto.setChecked(bool(settings.get("similar_on_open", False)) if settings else False)
        self.status = QLabel("Open a study to find similar ones")
        self.status.setWordWrap(True)
        self.list = QListWidget()
        self.list.currentRowChanged.connect(self._show)
        self.query_view, self.case_view = QLabel("this study"), QLabel("similar study")
        for v in (self.query_view, self.case_view):
            v.setAlignment(Qt.AlignmentFlag.AlignCenter)
            v.setMinimumSize(THUMB // 2, THUMB // 2)
        self.details = QTextBrowser()
        top = QHBoxLayout()
        top.addWidget(self.find_button)
        top.addWidget(self.k)
        top.addWidget(self.auto)
        top.addStretch(1)
        pair = QHBoxLayout()
        pair.addWidget(self.query_view)
        pair.addWidget(self.case_view)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.status)
        lay.addWidget(self.list, 1)
        lay.addLayout(pair)
        lay.addWidget(self.details, 1)

    # -- what is open ---------------------------------------------------------------------------------
    def set_study(self, study_uid: str, images: list[np.ndarray]) -> None:
        self.study_uid, self.images = study_uid, [np.asarray(i) for i in images]
        self.find_button.setEnabled(bool(study_uid and self.images))
        self.list.clear()
        self.hits = []
        self.details.clear()
        self.case_view.setPixmap(QPixmap())
        self.query_view.setPixmap(_pixmap(self.images[0]) if self.images else QPixmap())
        self.status.setText("Press Find to search similar studies" if self.images else "This study has no image")
        if self.auto.isChecked() and self.images:
            self.find_similar()

    def _params(self) -> dict[str, Any]:
        """Where the indexes are; the site's in PostgreSQL (pgvector) when the department runs it. Raises
        ValueError for a wrong similar_backend setting."""
        if self.settings is None:
            return {}
        dev = dev_index_dir(self.settings)
        return {"cases_dir": str(cases_dir(self.settings)), "cases_url": cases_url(self.settings),
                "dev_index": str(dev) if dev else ""}

    # -- search ---------------------------------------------------------------------------------------
    def find_similar(self) -> None:
        if not self.study_uid or not self.images:
            self.status.setText("Open a study with an image first")
            return
        try:
            where = self._params()
        except ValueError as exc:
            self.status.setText(f"Similar studies not searched: {exc}")
            return
        request = SimilarRequest(**where, images=tuple(self.images[:1]), k=int(self.k.value()),
                                 exclude=(self.study_uid,))
        runner = self.runner
        self.status.setText("Searching similar studies...")
        self.find_button.setEnabled(False)
        self._search = self._start(self.study_uid, lambda cancelled: runner.run(request, None, None, cancelled),
                                   self._on_found, self._on_failed)

    def _start(self, key: str, work: Callable[[Callable[[], bool]], Any], on_done: Callable[[str, Any], None],
               on_error: Callable[[str, str], None]) -> Job:
        """Run `work(cancelled)` in the background; `on_done(key, result)` / `on_error(key, message)` follow
        on the GUI thread (never once the panel is gone)."""
        def done(result: Any) -> None:
            on_done(key, result)
            self._reap(job)

        def failed(exc: BaseException) -> None:  # the panel shows it; the GUI never dies for a failed search
            on_error(key, str(exc) or type(exc).__name__)
            self._reap(job)

        job = self._runner.start(lambda j: work(j.cancelled), on_done=done, on_error=failed)
        return job

    def _reap(self, job: Job) -> None:
        if job is self._search:
            self._search = None
            self.find_button.setEnabled(bool(self.study_uid and self.images))

    def busy(self) -> bool:
        """A search or an indexing job has not reported yet."""
        return self._runner.busy()

    def _on_found(self, key: str, result: Any) -> None:
        if key != self.study_uid:
            return
        if not isinstance(result, SimilarCases):  # the engine answered with another job's result
            self._on_failed(key, f"the engine sent a '{getattr(result, 'kind', '?')}' result, not similar cases")
            return
        self.hits = list(result.hits)
        self.list.clear()
        for h in self.hits:
            positives = [f for f, v in (h.get("labels") or {}).items() if v == 1 and f != "No Finding"]
            where = "this site" if h.get("origin") == "site" else "training data"
            item = QListWidgetItem(f"{h.get('score', 0):.2f}  {where}: {h.get('title') or h.get('case_id')}  -  "
                                   f"{', '.join(positives) or 'no finding'}")
            item.setToolTip((h.get("impression") or h.get("findings") or "")[:300])
            self.list.addItem(item)
        notes = "; ".join(result.notes)
        site = sum(h.get("origin") == "site" for h in self.hits)
        self.status.setText(f"{len(self.hits)} similar studies ({site} from this site)" + (f". {notes}" if notes
                                                                                            else "")
                            if self.hits else "No indexed study to compare with yet" + (f". {notes}" if notes else ""))
        if self.hits:
            self.list.setCurrentRow(0)
        self.searched.emit(len(self.hits))

    def _on_failed(self, key: str, message: str) -> None:
        if key == self.study_uid:
            self.status.setText(f"Could not search similar studies: {message}")

    def _show(self, row: int) -> None:
        if not 0 <= row < len(self.hits):
            return
        h = self.hits[row]
        try:
            pixels = self.case_image(h)
        except Exception as exc:  # noqa: BLE001 - a missing image must not hide the report
            pixels = None
            self.status.setText(f"Image of {h.get('case_id')} not shown: {exc}")
        self.case_view.setPixmap(_pixmap(pixels))
        if pixels is None:
            self.case_view.setText("image not available")
        labels = ", ".join(f"{f} {'present' if v == 1 else 'absent' if v == 0 else 'uncertain'}"
                           for f, v in (h.get("labels") or {}).items())
        from html import escape

        self.details.setHtml(
            f"<b>{escape(h.get('title') or h.get('case_id') or '')}</b> (similarity {h.get('score', 0):.2f}, "
            f"{'signed at this site' if h.get('origin') == 'site' else 'curated training data, composed report'})"
            f"<p><b>Findings:</b> {escape(h.get('findings') or '')}</p>"
            f"<p><b>Impression:</b> {escape(h.get('impression') or '')}</p><p><b>Labels:</b> {escape(labels)}</p>")

    # -- indexing ---------------------------------------------------------------------------------------
    def index_signed(self, study_uid: str, images: list[np.ndarray], findings: str, impression: str,
                     title: str = "", image_ref: str = "") -> None:
        """Add a study whose report was just signed to the site's index (in the worker; never blocks)."""
        if self.settings is None or not images:
            return
        try:
            where = self._params()
        except ValueError as exc:
            self.status.setText(f"Signed study {study_uid[-12:]} not indexed: {exc}")
            return
        request = IndexCaseRequest(cases_dir=where["cases_dir"], cases_url=where["cases_url"],
                                   images=(np.asarray(images[0]),), case_id=study_uid, findings=findings,
                                   impression=impression, title=title or study_uid, image_ref=image_ref or study_uid)
        runner = self.runner
        self._start(study_uid, lambda cancelled: runner.run(request, None, None, cancelled),
                    lambda uid, _r: self.indexed.emit(uid),
                    lambda uid, msg: self.status.setText(f"Signed study {uid[-12:]} not indexed: {msg}"))

    def shutdown(self, timeout_ms: int = 30000) -> None:
        self._runner.cancel_all()
        self._runner.wait(timeout_ms / 1000)
