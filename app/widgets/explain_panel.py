"""The explain panel: why the engine wrote each sentence and where it is unsure.

Sentences of the current report (click one: its map goes over the image), the findings the labeler
reads in it with the share of sampled drafts that agree (flip through their maps), the method, overlay
controls (opacity, colormap, threshold) with a colour bar, and an uncertainty-map toggle. The panel
never paints: it emits `overlayRequested(map | None, opacity, colormap, threshold)` for the main
window to hand to `ViewerWorkspace.set_overlay`, so overlays follow zoom/pan/W-L and are never
burned in. Explanations are computed by the app's engine worker process (app.model_runner), waited for in a
background job (progress, Cancel), and cached per (study, report text, engine).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.model_runner import as_runner
from engines.backends.results import OutOfScope
from engines.errors import JobCancelled
from engines.worker.job_results import ExplanationResult
from engines.worker.requests import ExplainStudyRequest
from engines.worker.wire import to_wire
from explain.cache import ExplanationCache, explanation_key
from explain.colormap import COLORMAPS, colormap_table
from explain.study import StudyExplanation
from explain.worker_jobs import explanation_from_result
from viewer.widgets.background import BackgroundRunner, Job

_SECTION_LABEL = re.compile(r"^\s*(?:findings|impression)\s*:\s*", re.IGNORECASE)
METHOD_LABELS = {"attention": "Attention", "ig": "Integrated gradients", "head": "Finding head (IG)",
                 "cam": "Finding head (CAM)", "reader": "Finding reader (Grad-CAM)"}
STATE_TEXT = {"present": "present", "absent": "absent", "uncertain": "uncertain"}



def _head_note(exp, finding: str) -> str:
    """' - head 71% (usual 57%)': the finding head's reading of the image next to the training prevalence."""
    p = exp.head_probabilities.get(finding)
    if p is None:
        return ""
    prior = exp.head_prior.get(finding)
    return f" - head {p:.0%}" + ("" if prior is None else f" (usual {prior:.0%})")

OUT_OF_SCOPE_PREFIX = "out of scope: "


class OutOfScopeError(RuntimeError):
    """The engine's input gate stopped the explanation (the message is the gate's summary)."""

    def __str__(self) -> str:
        return OUT_OF_SCOPE_PREFIX + super().__str__()


class ColourBar(QWidget):
    """A horizontal gradient of the current colormap with its scale (low .. high, relative within the image)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QLabel()
        self.bar.setMinimumHeight(14)
        self.low, self.high = QLabel("0 low"), QLabel("1 high")
        for lab in (self.low, self.high):
            lab.setStyleSheet("color:#555")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.low)
        lay.addWidget(self.bar)
        lay.addWidget(self.high)
        lay.addStretch(1)
        self.colormap = "jet"
        self.set_colormap("jet")

    def set_colormap(self, name: str) -> None:
        table = np.ascontiguousarray(np.repeat(colormap_table(name)[None], 12, axis=0))
        img = QImage(table.data, 256, 12, 256 * 3, QImage.Format.Format_RGB888).copy()
        self.colormap = name
        self.bar.setPixmap(QPixmap.fromImage(img).scaled(180, 12))
        self.setToolTip(f"{name}: 0 (left, least) .. 1 (right, most), relative within this image; values below the "
                        "threshold are not painted")


class ExplainPanel(QWidget):
    """See the module docstring. Feed it with `set_study`; connect `overlayRequested`."""

    overlayRequested = Signal(object, float, str, float)  # noqa: N815 - Qt naming
    explanationReady = Signal(object)  # noqa: N815 - StudyExplanation
    failed = Signal(str)

    def __init__(self, runner: Any, cache: ExplanationCache | None = None,
                 *, k_drafts: int = 4, steps: int | None = 16, ig_steps: int = 8,
                 engine_key: str = "", parent: QWidget | None = None) -> None:
        """`runner`: where the model runs (app.model_runner.ClientRunner in the app: the engine worker);
        a pipeline factory (callable) runs the same job in this process, for scripts and tests."""
        super().__init__(parent)
        self.runner = as_runner(runner)
        self.cache = cache or ExplanationCache()
        self.k_drafts = k_drafts
        self.steps, self.ig_steps = steps, ig_steps  # fewer unmasking/IG steps than a draft: CPU-friendly
        self.engine_key = engine_key or self.runner.key
        self._study: tuple[str, list[np.ndarray], str, Any] | None = None
        self._key = ""
        self._runner = BackgroundRunner(self)
        self._thread: Job | None = None
        self.explanation: StudyExplanation | None = None
        self._selection: tuple[str, int] | None = None  # ("sentence" | "finding", index)
        self._pixel_cache: dict[tuple, np.ndarray] = {}

        self.status = QLabel("No study")
        self.status.setWordWrap(True)
        self.explain_button = QPushButton("Explain")
        self.explain_button.setToolTip("Compute maps and uncertainty for the current report")
        self.explain_button.clicked.connect(self.explain)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self._headers: list[dict] = []
        self._last_scope: dict = {}
        self.confirm_override: Any = self._confirm_override  # replaceable in tests
        self.scope_note = QLabel("")
        self.scope_note.setWordWrap(True)
        self.scope_note.setStyleSheet("color:#555")
        self.override_button = QPushButton("Explain anyway\u2026")
        self.override_button.setToolTip("Explain although the engine was not trained on images like this one")
        self.override_button.clicked.connect(self.explain_anyway)
        self.override_button.hide()
        self.sentences = QListWidget()
        self.sentences.setWordWrap(True)
        self.sentences.currentRowChanged.connect(lambda r: self._select("sentence", r))
        self.findings = QListWidget()
        self.findings.currentRowChanged.connect(lambda r: self._select("finding", r))
        self.method = QComboBox()
        for key, label in METHOD_LABELS.items():
            self.method.addItem(label, key)
        self.method.currentIndexChanged.connect(lambda _i: self._emit())
        self.opacity = QSlider()
        self.opacity.setOrientation(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.valueChanged.connect(lambda _v: self._emit())
        self.colormap = QComboBox()
        self.colormap.addItems(list(COLORMAPS))
        self.colormap.currentTextChanged.connect(self._colormap_changed)
        self.threshold = QSlider()
        self.threshold.setOrientation(Qt.Orientation.Horizontal)
        self.threshold.setRange(0, 95)
        self.threshold.setValue(20)
        self.threshold.valueChanged.connect(lambda _v: self._emit())
        self.colour_bar = ColourBar()
        self.map_note = QLabel("")
        self.map_note.setWordWrap(True)
        self.map_note.setStyleSheet("color:#555")
        self.uncertainty = QCheckBox("Show image uncertainty map")
        self.uncertainty.setToolTip("Where the engine is unsure what the image should look like given the report "
                                    "(entropy of image tokens when drawing the image from the report)")
        self.uncertainty.toggled.connect(lambda _on: self._emit())
        self.clear_button = QPushButton("Hide overlay")
        self.clear_button.clicked.connect(self.clear_overlay)

        buttons = QHBoxLayout()
        buttons.addWidget(self.explain_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.clear_button)
        form = QFormLayout()
        form.addRow("Method", self.method)
        form.addRow("Opacity", self.opacity)
        form.addRow("Colormap", self.colormap)
        form.addRow("Threshold", self.threshold)
        form.addRow("", self.colour_bar)
        form.addRow("", self.map_note)
        lay = QVBoxLayout(self)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.scope_note)
        lay.addWidget(self.override_button)
        lay.addWidget(QLabel("Sentences (click to show where they look; uncertainty in brackets)"))
        lay.addWidget(self.sentences, 3)
        lay.addWidget(QLabel("Findings (share of sampled drafts that agree; the finding head's reading)"))
        lay.addWidget(self.findings, 2)
        lay.addLayout(form)
        lay.addWidget(self.uncertainty)

    # -- inputs ---------------------------------------------------------------------------------------
    def set_study(self, study_key: str, images: list[np.ndarray] | np.ndarray, report_text: str,
                  draft: Any = None, *, auto: bool = False, headers: list[dict] | None = None) -> None:
        """The study and report to explain (the report as it is now: any edit is a new version).
        `draft` is the engine's TextResult when the text is its draft (adds per-token confidence).
        Shows a cached explanation at once; otherwise computes when `auto` or on Explain."""
        if isinstance(images, np.ndarray):
            images = [images]
        previous = self._study
        stale = (previous is not None and previous[0] == study_key and previous[2] != (report_text or "")
                 and self.explanation is not None)
        self._study = (study_key, list(images), report_text or "", draft)
        self._headers = list(headers or [])
        self.scope_note.clear()
        self.override_button.hide()
        self.clear_overlay()
        self._show(None)
        if not study_key or not images or not (report_text or "").strip():
            self.status.setText("Nothing to explain: no image or an empty report")
            self.explain_button.setEnabled(False)
            return
        self.explain_button.setEnabled(True)
        cached = self.cache.get(self._cache_key()) if self.engine_key else None
        if cached is not None:
            self._show(cached)
            self.status.setText("Explanation from cache")
        elif auto:
            self.explain()
        elif stale:
            self.status.setText("The report text changed: the explanation of the old text was removed. "
                                "Press Explain to explain the text shown now.")
        else:
            self.status.setText("Press Explain to compute maps and uncertainty")

    def _cache_key(self) -> str:
        assert self._study is not None
        study_key, _images, text, _draft = self._study
        return explanation_key(study_key, text, self.engine_key, self._settings())

    def _settings(self) -> dict:
        return {"k": self.k_drafts, "steps": self.steps, "ig_steps": self.ig_steps}

    # -- computation ----------------------------------------------------------------------------------
    def explain(self, override: bool = False) -> None:
        """Compute (or fetch from the cache) the explanation of the current study in a background job. The engine's
        input gate stops an image outside its scope unless `override` (after the user confirmed)."""
        if self._study is None or self._thread is not None:
            return
        study_key, images, text, draft = self._study
        if self.engine_key:
            cached = self.cache.get(self._cache_key())
            if cached is not None:
                self._show(cached)
                return
        runner = self.runner
        request = ExplainStudyRequest(images=tuple(np.asarray(a) for a in images), text=text, draft=to_wire(draft),
                                      k_drafts=self.k_drafts, steps=self.steps, ig_steps=self.ig_steps,
                                      headers=tuple(self._headers[:len(images)]), override_scope=bool(override))

        def job(progress, cancel) -> StudyExplanation:
            result = runner.run(request, None, progress, cancel)
            if isinstance(result, OutOfScope):
                raise OutOfScopeError(result.message)
            if not isinstance(result, ExplanationResult):  # the engine answered with another job's result
                raise RuntimeError(f"the engine sent a '{getattr(result, 'kind', '?')}' result, not an explanation")
            if not self.engine_key:
                self.engine_key = result.engine_key
            self._last_scope = result.scope.to_dict() if result.scope is not None else {}
            return explanation_from_result(result)

        self._key = key = study_key + "\0" + text

        def done(exp: StudyExplanation) -> None:
            self._reap(th)
            self._on_done(key, exp)

        def failed(exc: BaseException) -> None:  # the panel shows it; the GUI never dies for a failed explanation
            self._reap(th)
            cancelled = isinstance(exc, JobCancelled)
            message = str(exc) if isinstance(exc, RuntimeError) and not cancelled else f"{type(exc).__name__}: {exc}"
            self._on_failed(key, "cancelled" if cancelled else message)

        self.progress.setValue(0)
        self.status.setText("Explaining...")
        self.cancel_button.setEnabled(True)
        self.explain_button.setEnabled(False)
        th = self._thread = self._runner.start(
            lambda j: job(lambda d, n, *_: j.progress(int(d), int(n)), j.cancelled),
            on_done=done, on_error=failed, on_progress=self._on_progress)

    def explain_anyway(self) -> None:
        if self.confirm_override():
            self.override_button.hide()
            self.explain(override=True)

    def _confirm_override(self) -> bool:
        from PySide6.QtWidgets import QMessageBox

        answer = QMessageBox.warning(self, "Outside the engine's scope",
                                     f"{self.status.text()}\n\nMaps of an image the engine was not trained on "
                                     "may be meaningless. Explain anyway?",
                                     QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                     QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def cancel(self) -> None:
        if self._thread is not None:
            self._thread.cancel()
            self.status.setText("Cancelling...")

    def is_busy(self) -> bool:
        return self._thread is not None

    def _reap(self, th: Job) -> None:
        if self._thread is th:
            self._thread = None
        self.cancel_button.setEnabled(False)
        self.explain_button.setEnabled(self._study is not None)

    def _current(self, key: str) -> bool:
        return self._study is not None and key == self._study[0] + "\0" + self._study[2]

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_done(self, key: str, exp: StudyExplanation) -> None:
        if self.engine_key and self._study is not None and key.split("\0", 1)[1] == self._study[2]:
            study_key = key.split("\0", 1)[0]
            self.cache.put(explanation_key(study_key, self._study[2], self.engine_key, self._settings()), exp)
        if not self._current(key):
            self.status.setText("The report changed while explaining; press Explain again")
            return
        self._show(exp)
        self.status.setText(f"Explained {len(exp.sentences)} sentences, {len(exp.drafts)} sampled drafts")
        self.scope_note.setText(str(self._last_scope.get("summary", "")))
        self.explanationReady.emit(exp)

    def _on_failed(self, key: str, message: str) -> None:
        self.progress.setValue(0)
        if message.startswith(OUT_OF_SCOPE_PREFIX):
            self.status.setText("Not explained. " + message[len(OUT_OF_SCOPE_PREFIX):])
            self.override_button.show()
            return
        self.status.setText("Cancelled" if message == "cancelled" else f"Could not explain: {message}")
        if message != "cancelled":
            self.failed.emit(message)

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Cancel and wait for a running explanation (call before the panel is destroyed)."""
        self._runner.cancel_all()
        self._runner.wait(timeout_ms / 1000)

    # -- display --------------------------------------------------------------------------------------
    def set_explanation(self, exp: StudyExplanation | None) -> None:
        """Show an explanation computed elsewhere (e.g. by a worker process)."""
        self._show(exp)

    def _show(self, exp: StudyExplanation | None) -> None:
        self.explanation = exp
        self._pixel_cache.clear()
        self._selection = None
        for w in (self.sentences, self.findings):
            w.blockSignals(True)
            w.clear()
        if exp is not None:
            for k, s in enumerate(exp.sentences):
                bits = []
                dis = exp.sentence_disagreement[k] if k < len(exp.sentence_disagreement) else None
                if dis is not None:
                    bits.append(f"drafts disagree {dis:.0%}")
                tok = exp.sentence_tokens[k] if k < len(exp.sentence_tokens) else None
                if tok is not None:
                    bits.append(f"min token conf {tok.min_confidence:.0%}")
                elif np.isfinite(s.entropy):
                    bits.append(f"entropy {s.entropy:.2f}")
                shown = _SECTION_LABEL.sub("", s.text)
                item = QListWidgetItem(shown + (f"  [{', '.join(bits)}]" if bits else ""))
                if dis is not None and dis >= 0.5:
                    item.setForeground(QColor(200, 60, 0))
                self.sentences.addItem(item)
            for f in exp.report.findings:
                fu = exp.findings.get(f.finding)
                state = {1: "present", 0: "absent", -1: "uncertain"}.get(f.value, "?")
                conf = "" if fu is None else f" - {fu.agreement:.0%} of drafts agree"
                # The numbers first: the quoted sentence can be long and the list scrolls sideways.
                self.findings.addItem(QListWidgetItem(f"{f.finding} ({state}){_head_note(exp, f.finding)}{conf} "
                                                      f"\u201c{f.text}\u201d"))
        for w in (self.sentences, self.findings):
            w.blockSignals(False)
        self.uncertainty.setEnabled(exp is not None and exp.image_uncertainty is not None)

    def _select(self, kind: str, row: int) -> None:
        if row < 0:
            return
        other = self.findings if kind == "sentence" else self.sentences
        other.blockSignals(True)
        other.setCurrentRow(-1)
        other.blockSignals(False)
        self._selection = (kind, row)
        self._emit()

    def select_sentence(self, index: int) -> None:
        self.sentences.setCurrentRow(index)

    def select_finding(self, index: int) -> None:
        self.findings.setCurrentRow(index)

    def current_method(self) -> str:
        return str(self.method.currentData())

    def current_map(self) -> np.ndarray | None:
        """The pixel map the current selection and toggles ask for (None: nothing to show)."""
        exp = self.explanation
        if exp is None:
            return None
        if self.uncertainty.isChecked():
            key: tuple = ("uncertainty",)
            if key not in self._pixel_cache:
                m = exp.image_uncertainty_map()
                if m is None:
                    return None
                self._pixel_cache[key] = m
            return self._pixel_cache[key]
        if self._selection is None:
            return None
        kind, row = self._selection
        items = exp.sentences if kind == "sentence" else exp.report.findings
        if not 0 <= row < len(items):
            return None
        method = self.current_method()
        key = (kind, row, method)
        if key not in self._pixel_cache:
            m = items[row].pixel_map(method)
            if m is None:
                return None
            self._pixel_cache[key] = m
        return self._pixel_cache[key]

    def missing_reason(self) -> str:
        """Why the selection shows no map ('' when it shows one or nothing is selected)."""
        exp = self.explanation
        if exp is None:
            return ""
        if self.uncertainty.isChecked():
            return "" if self.current_map() is not None else "this explanation has no image uncertainty map"
        if self._selection is None:
            return ""
        kind, row = self._selection
        items = exp.sentences if kind == "sentence" else exp.report.findings
        if not 0 <= row < len(items):
            return ""
        method = self.current_method()
        label = METHOD_LABELS.get(method, method)
        what = "sentence" if kind == "sentence" else "finding"
        grid = items[row].grids.get(method)
        if grid is None:
            if method in ("head", "cam"):
                return (f"{label} gives no map for this {what}: it names no finding the engine's finding head "
                        "reads (or these weights have no finding head)")
            return f"{label} was not computed for this {what}"
        if not np.isfinite(grid).all():
            return f"{label} gives no map for this {what}: it lies beyond the text the model reads (cut off)"
        m = self.current_map()
        if m is None or float(np.nanmax(m)) <= 0:
            return f"{label} found no evidence in the image for this {what} (the map is empty)"
        return ""

    def current_caption(self) -> str:
        """What the shown map is, for the viewer's caption: method and sentence/finding, or the uncertainty map."""
        exp = self.explanation
        if exp is None:
            return ""
        if self.uncertainty.isChecked():
            return "Image uncertainty: where the engine is unsure what the image should look like (relative)"
        if self._selection is None:
            return ""
        kind, row = self._selection
        items = exp.sentences if kind == "sentence" else exp.report.findings
        if not 0 <= row < len(items):
            return ""
        method = METHOD_LABELS.get(self.current_method(), self.current_method())
        if kind == "finding":
            f = items[row]
            state = {1: "present", 0: "absent", -1: "uncertain"}.get(f.value, "?")
            return f"{method} for {f.finding} ({state}) - relative within this image"
        text = _SECTION_LABEL.sub("", items[row].text).strip()
        return f"{method} for \u201c{text[:80]}{'...' if len(text) > 80 else ''}\u201d - relative within this image"

    def overlay_params(self) -> tuple[float, str, float]:
        return self.opacity.value() / 100.0, self.colormap.currentText(), self.threshold.value() / 100.0

    def _colormap_changed(self, name: str) -> None:
        self.colour_bar.set_colormap(name)
        self._emit()

    def _emit(self) -> None:
        m = self.current_map()
        opacity, cmap, thr = self.overlay_params()
        if m is None and self._selection is None and not self.uncertainty.isChecked():
            return
        why = self.missing_reason()
        self.map_note.setText(f"No map: {why}." if why else self.current_caption())
        self.overlayRequested.emit(None if why else m, opacity, cmap, thr)

    def clear_overlay(self) -> None:
        for w in (self.sentences, self.findings):
            w.blockSignals(True)
            w.setCurrentRow(-1)
            w.blockSignals(False)
        self._selection = None
        if self.uncertainty.isChecked():
            self.uncertainty.blockSignals(True)
            self.uncertainty.setChecked(False)
            self.uncertainty.blockSignals(False)
        opacity, cmap, thr = self.overlay_params()
        self.overlayRequested.emit(None, opacity, cmap, thr)

    def export_current(self, source: Any, path: str | Path, *, kind: str = "auto") -> Any:
        """Write the shown map as DICOM linked to `source` (a pydicom Dataset or file path of the image
        the map was computed on); returns the dataset. Raises ValueError when nothing is shown."""
        from app.export_files import save_dataset_private
        from app.paths import private_dir
        from explain.export import export_map

        m = self.current_map()
        if m is None:
            raise ValueError("no map is shown: select a sentence or finding first")
        opacity, cmap, thr = self.overlay_params()
        label = "image uncertainty" if self.uncertainty.isChecked() else self._selection_label()
        ds = export_map(source, m, label=label, kind=kind, colormap=cmap, opacity=opacity, threshold=thr or None)
        path = Path(path)
        private_dir(path.parent, tighten=False)
        save_dataset_private(ds, path)
        return ds

    def _selection_label(self) -> str:
        if self.explanation is None or self._selection is None:
            return "explanation"
        kind, row = self._selection
        items = self.explanation.sentences if kind == "sentence" else self.explanation.report.findings
        return f"{METHOD_LABELS.get(self.current_method(), '')}: {items[row].text}"
