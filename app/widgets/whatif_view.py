"""The what-if view: the original beside its counterfactual under an edited report.

Left the original (as the model sees it), right the counterfactual (the original plus the model's change,
engines.counterfactual.composite) with the SYNTHETIC warning burned in; zoom, pan, rotation and W/L are
linked both ways; a difference-map overlay; a slider blending from the original to the counterfactual;
several variants (one per seed) to browse; a progress bar and Cancel. The job
(engines.counterfactual.run_whatif) runs in the engine worker process (app.model_runner); a background job
(viewer.widgets.background) waits for it, so the GUI never blocks. "Save" stores the shown variant as a
SYNTHETIC secondary-capture series (app.counterfactual).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.ai.scope import overridden, record_override
from app.counterfactual import (
    WARNING,
    CounterfactualInfo,
    StoredSeries,
    burn_in_warning,
    store_counterfactuals,
)
from app.counterfactual.model_identity import model_identity
from app.model_runner import ModelRunner, as_runner
from engines.backends.results import OutOfScope
from engines.counterfactual import EditError, WhatIfRequest, WhatIfResult, apply_instruction
from engines.counterfactual.metrics import blend
from engines.counterfactual.worker_jobs import whatif_from_result
from engines.errors import JobCancelled
from engines.scope.header import header_of
from engines.worker.job_results import WhatIfOutput, WhatIfWarning
from engines.worker.requests import WhatIfJob
from engines.worker.wire import to_wire
from viewer.io.image import DicomImage
from viewer.models.tools import Tool
from viewer.widgets.background import BackgroundRunner, Job
from viewer.widgets.viewport import Viewport

DIFF_FULL_SCALE = 64.0  # grey levels of |difference| shown in the hottest colour
DIFF_THRESHOLD = 6.0  # smaller differences are left transparent (VQ decoder noise at the region's edge)
_LINKED = ("zoom", "fit", "pan_x", "pan_y", "rotation", "flip_h", "flip_v", "invert", "window")


IDENTITY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
            "AccessionNumber", "StudyDescription", "Modality", "BodyPartExamined", "ViewPosition",
            "ImageLaterality", "PatientOrientation")


def array_image(arr: np.ndarray, description: str = "", source: Dataset | None = None) -> DicomImage:
    """An in-memory 8-bit DICOM image of a uint8 array, so a Viewport can show it. With `source` it carries
    the acquired image's identity (patient, study, modality, orientation) and its pixel spacing scaled to
    the array's size, so the pane says whose image it is and measures in mm."""
    a = np.ascontiguousarray(np.asarray(arr, np.uint8))
    ds = Dataset()
    ds.SOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.SeriesDescription = description
    ds.Rows, ds.Columns = a.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.WindowCenter, ds.WindowWidth = 128, 256
    if source is not None:
        for keyword in IDENTITY:
            if keyword in source:
                setattr(ds, keyword, source.data_element(keyword).value)
        spacing = source.get("PixelSpacing") or source.get("ImagerPixelSpacing")
        rows, cols = int(source.get("Rows", 0) or 0), int(source.get("Columns", 0) or 0)
        if spacing is not None and len(spacing) == 2 and rows and cols:
            ds.PixelSpacing = [float(spacing[0]) * rows / a.shape[0], float(spacing[1]) * cols / a.shape[1]]
    ds.PixelData = a.tobytes()
    return DicomImage.from_dataset(ds)


def _run_whatif(runner: ModelRunner, request: WhatIfRequest, flags: dict[str, Any], job: Job) -> tuple[str, Any]:
    """The what-if job of the engine worker process, waited for off the GUI thread. Returns ("warned",
    sentences: the edit contradicts the engine's reading), ("out_of_scope", the input gate's decision) or
    ("done", (WhatIfResult, the gate's decision)); nothing ran in the first two."""
    job.progress(0, 0, "waiting for the engine")
    raw = runner.run(WhatIfJob(request=to_wire(request), **flags), None,
                     lambda a, b, s="": job.progress(int(a), int(b), str(s)), job.cancelled)
    if isinstance(raw, OutOfScope):
        return "out_of_scope", raw.scope.to_dict()
    if isinstance(raw, WhatIfWarning):
        return "warned", list(raw.warnings)
    if not isinstance(raw, WhatIfOutput):  # the engine answered with another job's result
        raise RuntimeError(f"the engine sent a '{getattr(raw, 'kind', '?')}' result, not a what-if image")
    return "done", (whatif_from_result(raw), raw.scope.to_dict() if raw.scope is not None else None)


class WhatIfView(QWidget):
    """See the module doc. Set the case with `set_case`, then `start()` (or the What if button)."""

    resultReady = Signal(object)  # WhatIfResult
    failed = Signal(str)
    cancelled = Signal()
    stored = Signal(object)  # StoredSeries

    def __init__(self, runner: Any, parent: QWidget | None = None, database: Any = None) -> None:
        """`runner`: app.model_runner.ClientRunner (the app's engine worker process), or a pipeline factory
        (callable) to run the same job in this process (scripts, tests)."""
        super().__init__(parent)
        self.database = database
        # Questions to the user, replaceable in tests: (warnings) -> bool and (scope) -> bool
        self.confirm_edit: Any = self._confirm_edit
        self.confirm_override: Any = self._confirm_override
        self.user_provider: Any = lambda: None  # () -> AuthSession | None, for the audit of an override
        self._flags: dict[str, Any] = {}
        self._headers: list[dict] = []
        self._source: Dataset | None = None
        self._image: np.ndarray | None = None
        self._result: WhatIfResult | None = None
        self._last_request: WhatIfRequest | None = None
        self._syncing = False
        self._running = False

        self.report_edit = QPlainTextEdit()
        self.report_edit.setPlaceholderText("Edited report (what the image should show)")
        self.report_edit.setMaximumHeight(90)
        self.instruction = QLineEdit()
        self.instruction.setPlaceholderText('or an instruction: "remove the effusion", "add a right upper lobe nodule"')
        self.instruction.returnPressed.connect(self.apply_instruction)
        self.apply_button = QPushButton("Apply to text")
        self.apply_button.clicked.connect(self.apply_instruction)
        self.variants_spin = QSpinBox()
        self.variants_spin.setRange(1, 8)
        self.variants_spin.setValue(2)
        self.variants_spin.setPrefix("variants: ")
        self.run_button = QPushButton("What if")
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        self.original_view = Viewport()
        self.counterfactual_view = Viewport()
        self.original_view.stateChanged.connect(lambda: self._sync(self.original_view, self.counterfactual_view))
        self.counterfactual_view.stateChanged.connect(
            lambda: self._sync(self.counterfactual_view, self.original_view))
        self.blend_slider = QSlider(Qt.Orientation.Horizontal)
        self.blend_slider.setRange(0, 100)
        self.blend_slider.setValue(100)
        self.blend_slider.setToolTip("Blend from the original (left end) to the counterfactual (right end); only "
                                     "the resampled region and a one-token margin around it can change")
        self.blend_slider.valueChanged.connect(self._show_variant)
        self.diff_box = QCheckBox("Difference map")
        self.diff_box.setChecked(True)
        self.diff_box.toggled.connect(self._show_variant)
        self.variant_combo = QComboBox()
        self.variant_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.variant_combo.setToolTip("Variants, best first: how far the engine's finding head moved the asked way")
        self.variant_combo.currentIndexChanged.connect(self._show_variant)
        self.paint_box = QCheckBox("Draw region")
        self.paint_box.setToolTip("Draw ellipses/rectangles on the original: only there is the image resampled "
                                  "(instead of where the changed sentences point)")
        self.paint_box.toggled.connect(self._paint_toggled)
        self.save_button = QPushButton("Save as synthetic series")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self.save_current)
        self.warning = QLabel(f"<b style='color:#d33'>{WARNING}</b>")

        top = QHBoxLayout()
        top.addWidget(self.instruction, 1)
        top.addWidget(self.apply_button)
        top.addWidget(self.paint_box)
        top.addWidget(self.variants_spin)
        top.addWidget(self.run_button)
        top.addWidget(self.cancel_button)
        prog = QHBoxLayout()
        prog.addWidget(self.progress, 1)
        prog.addWidget(self.status, 2)
        views = QSplitter(Qt.Orientation.Horizontal)
        for title, view in (("Original", self.original_view), ("Counterfactual", self.counterfactual_view)):
            box = QWidget()
            lay = QVBoxLayout(box)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.addWidget(QLabel(title) if title == "Original" else self.warning)
            lay.addWidget(view, 1)
            views.addWidget(box)
            views.setStretchFactor(views.count() - 1, 1)
        views.setSizes([1000, 1000])
        bottom = QHBoxLayout()
        bottom.addWidget(QLabel("Original"))
        bottom.addWidget(self.blend_slider, 1)
        bottom.addWidget(QLabel("What if"))
        bottom.addWidget(self.diff_box)
        bottom.addWidget(self.variant_combo)
        bottom.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.report_edit)
        layout.addLayout(top)
        layout.addLayout(prog)
        layout.addWidget(views, 1)
        layout.addLayout(bottom)

        self._engine: ModelRunner = as_runner(runner)
        self._runner = BackgroundRunner(self)
        self._job: Job | None = None

    # ------------------------------------------------------------------ input
    def set_case(self, image: np.ndarray, current_report: str, source: Dataset | None = None) -> None:
        """The image (2D array as the viewer decodes it), the current report version's text and the
        source DICOM dataset (needed to save; referenced by the saved images)."""
        arr = np.asarray(image)
        if arr.ndim != 2 or arr.size == 0:
            raise ValueError(f"the what-if view needs a 2D image, got shape {arr.shape}")
        self._image, self._source = arr, source
        self._headers = [header_of(source)] if source is not None else []
        self._current = current_report or ""
        if not self.report_edit.toPlainText().strip():
            self.report_edit.setPlainText(self._current)
        from engines.pipeline import prepare_image

        self.original_view.set_image(array_image(prepare_image(arr, max(arr.shape)), source=source))
        self.status.setText("Edit the report or type an instruction, then press What if.")

    def apply_instruction(self) -> bool:
        """Turn the instruction into edited report text (shown for review); False with a message if not."""
        text = self.instruction.text().strip()
        if not text:
            return False
        try:
            edited = apply_instruction(self.report_edit.toPlainText() or getattr(self, "_current", ""), text)
        except EditError as exc:
            self.status.setText(str(exc))
            return False
        self.report_edit.setPlainText(edited)
        self.instruction.clear()
        return True

    def _paint_toggled(self, on: bool) -> None:
        self.original_view.set_tool(Tool.ELLIPSE if on else Tool.WINDOW)

    def painted_mask(self) -> np.ndarray | None:
        """Union of the rectangles/ellipses drawn on the original view (in its pixels), None if none."""
        img = self.original_view.current_image()
        if img is None:
            return None
        h, w = img.rows, img.columns
        yy, xx = np.mgrid[0:h, 0:w] + 0.5
        mask = np.zeros((h, w), bool)
        for m in self.original_view.measurements():
            if getattr(m, "kind", "") not in ("rect", "ellipse"):
                continue
            (x0, y0), (x1, y1) = m.p0, m.p1
            xa, xb, ya, yb = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
            if m.kind == "rect":
                mask |= (xx >= xa) & (xx <= xb) & (yy >= ya) & (yy <= yb)
            elif xb > xa and yb > ya:
                cx, cy, rx, ry = (xa + xb) / 2, (ya + yb) / 2, (xb - xa) / 2, (yb - ya) / 2
                mask |= ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
        return mask if mask.any() else None

    # ------------------------------------------------------------------ job
    def is_running(self) -> bool:
        return self._running

    def start(self, *, confirmed: bool = False, override: bool = False) -> bool:
        """Start a what-if from the edited text (an instruction still in the box is applied first). The engine
        first checks the edit against its reading and the image against its scope; `confirmed`/`override` run
        past those after the user agreed."""
        if self._running:
            return False
        if self._image is None:
            self.status.setText("Open an image first.")
            return False
        if self.instruction.text().strip() and not self.apply_instruction():
            return False
        try:
            painted = self.painted_mask() if self.paint_box.isChecked() else None
            if self.paint_box.isChecked() and painted is None:
                raise ValueError("Draw region is on but no ellipse or rectangle is drawn on the original")
            req = WhatIfRequest(self._image, self._current, self.report_edit.toPlainText(),
                                seeds=tuple(range(self.variants_spin.value())), painted=painted)
            from engines.counterfactual import diff_reports

            if not diff_reports(req.current_report, req.edited_report).changes:
                raise EditError("the edited report states the same findings as the current one; nothing to show")
        except (ValueError, TypeError) as exc:
            self.status.setText(str(exc))
            return False
        self._last_request = req
        self._running = True
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.save_button.setEnabled(False)
        self.progress.setRange(0, 0)
        self.status.setText("Starting ...")
        self._flags = {"confirmed": bool(confirmed), "headers": tuple(self._headers), "override_scope": bool(override)}
        engine, flags = self._engine, dict(self._flags)
        self._job = self._runner.start(lambda job: _run_whatif(engine, req, flags, job), on_done=self._on_outcome,
                                       on_error=self._on_error, on_progress=self._on_progress)
        return True

    def _on_outcome(self, outcome: tuple[str, Any]) -> None:
        kind, value = outcome
        {"warned": self._on_warned, "out_of_scope": self._on_out_of_scope, "done": self._on_finished}[kind](value)

    def _on_error(self, exc: BaseException) -> None:  # shown to the user, never a crash of the GUI
        if isinstance(exc, JobCancelled):
            self._on_cancelled()
        else:
            self._on_failed(str(exc) if isinstance(exc, (ValueError, RuntimeError)) else
                            f"{type(exc).__name__}: {exc}")

    def _confirm_edit(self, warnings: list[str]) -> bool:
        from PySide6.QtWidgets import QMessageBox

        answer = QMessageBox.question(self, "What if: the engine's reading disagrees",
                                      "\n\n".join(warnings) + "\n\nRun the what-if anyway?",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _confirm_override(self, scope: dict[str, Any]) -> bool:
        from PySide6.QtWidgets import QMessageBox

        answer = QMessageBox.warning(self, "Outside the engine's scope",
                                     f"{scope.get('summary', '')}\n\nRun the what-if anyway? This is recorded in "
                                     "the audit log under your name.",
                                     QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                     QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _on_warned(self, warnings: list[str]) -> None:
        self._end()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        if self.confirm_edit(warnings):
            self.start(confirmed=True, override=bool(self._flags.get("override_scope")))
            return
        self.status.setText("Not run. " + " ".join(warnings))

    def _on_out_of_scope(self, scope: dict[str, Any]) -> None:
        self._end()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText(f"Not run: {scope.get('summary', 'out of scope')}")
        if self.confirm_override(scope):
            self.start(confirmed=bool(self._flags.get("confirmed")), override=True)

    def cancel(self) -> None:
        if self._running and self._job is not None:
            self._job.cancel()
            self.status.setText("Cancelling ...")

    def _end(self) -> None:
        self._running = False
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _on_progress(self, done: int, total: int, stage: str) -> None:
        if total <= 0:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        self.status.setText(stage[:1].upper() + stage[1:] + " ...")

    def _on_finished(self, done: tuple[WhatIfResult, dict[str, Any] | None]) -> None:
        result, scope = done
        self._end()
        self._result = result
        if overridden(scope) and self.database is not None:
            study = str(self._source.get("StudyInstanceUID", "")) if self._source is not None else ""
            record_override(self.database, getattr(self.user_provider(), "username", "") or "", study, "whatif",
                            scope or {})
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.original_view.set_image(array_image(result.original, source=self._source))
        self.variant_combo.blockSignals(True)
        self.variant_combo.clear()
        shown = result.shown_variants
        for k, v in enumerate(shown):  # best-first by the finding head when the model has one (ranking.py)
            words = v.words(result.signs)
            label = f"Variant {k + 1}: the engine's reading of {words}" if words else \
                f"Variant {k + 1} (the engine's finding head does not read the edited findings)"
            self.variant_combo.addItem(label, v.seed)
            self.variant_combo.setItemData(k, f"seed {v.seed}; {label}", Qt.ItemDataRole.ToolTipRole)
        self.variant_combo.blockSignals(False)
        self.variant_combo.setCurrentIndex(0)
        changes = ", ".join(c.describe() for c in result.edit.changes)
        failed = result.failed_variants
        failed_text = (f" {len(failed)} variant(s) FAILED and are not shown: " + "; ".join(
            f"seed {v.seed}: {v.failure}" for v in failed) + ".") if failed else ""
        if not shown:
            self.counterfactual_view.set_image(array_image(np.zeros_like(result.original), "what-if failed"))
            self.status.setText(f"What-if failed: {changes}.{failed_text}")
            self.failed.emit(failed_text.strip())
            return
        self._show_variant()
        self._sync(self.original_view, self.counterfactual_view)
        share = float(result.token_mask.mean())
        steered = " Steered by the finding head." if result.head_guidance else ""
        override = " Run on an image outside the engine's scope at the user's request." \
            if self._flags.get("override_scope") else ""
        self.status.setText(f"{changes}; {share:.0%} of the image resampled, the rest kept.{steered} "
                            f"{len(shown)} variant(s).{failed_text}{override}")
        self.save_button.setEnabled(self._source is not None and self.database is not None)
        self.resultReady.emit(result)

    def _on_failed(self, message: str) -> None:
        self._end()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText(f"What-if failed: {message}")
        self.failed.emit(message)

    def _on_cancelled(self) -> None:
        self._end()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText("Cancelled.")
        self.cancelled.emit()

    # ------------------------------------------------------------------ display
    def result(self) -> WhatIfResult | None:
        return self._result

    def current_variant_index(self) -> int:
        return max(0, self.variant_combo.currentIndex())

    def shown_counterfactual(self) -> np.ndarray | None:
        """The pixels the right view shows (blend at the slider position, warning burned in)."""
        if self._result is None or not self._result.shown_variants:
            return None
        v = self._result.shown_variants[self.current_variant_index()]
        mixed = blend(self._result.original, v.image, self.blend_slider.value() / 100.0)
        return burn_in_warning(mixed) if min(mixed.shape) >= 32 else mixed

    def _show_variant(self, *_: Any) -> None:
        img = self.shown_counterfactual()
        if img is None:
            return
        state = {k: getattr(self.counterfactual_view.state, k) for k in _LINKED}
        self._syncing = True  # set_image resets the view state; keep the linked one
        try:
            self.counterfactual_view.set_image(array_image(img, "what-if (synthetic)"))
            for k, val in state.items():
                setattr(self.counterfactual_view.state, k, val)
        finally:
            self._syncing = False
        v = self._result.shown_variants[self.current_variant_index()]
        if self.diff_box.isChecked():
            # absolute scale (full colour at DIFF_FULL_SCALE grey levels), so variants compare by eye
            d = np.clip(np.abs(v.difference) * (self.blend_slider.value() / 100.0) / DIFF_FULL_SCALE, 0, 1)
            self.counterfactual_view.set_overlay(d, opacity=0.55, colormap="jet",
                                                 threshold=DIFF_THRESHOLD / DIFF_FULL_SCALE)
        else:
            self.counterfactual_view.set_overlay(None)
        self.counterfactual_view.update()

    def _sync(self, src: Viewport, dst: Viewport) -> None:
        """Zoom, pan, rotation, flips, invert and W/L follow from one view to the other."""
        if self._syncing:
            return
        self._syncing = True
        try:
            changed = False
            for k in _LINKED:
                val = getattr(src.state, k)
                if getattr(dst.state, k) != val:
                    setattr(dst.state, k, val)
                    changed = True
            if changed:
                dst.update()
        finally:
            self._syncing = False

    # ------------------------------------------------------------------ saving
    def save_current(self) -> StoredSeries | None:
        """Store the shown variant (the full counterfactual, not the blend) as a SYNTHETIC series."""
        if self._result is None or self._source is None or self.database is None:
            return None
        v = self._result.shown_variants[self.current_variant_index()]
        edit = ", ".join(c.describe() for c in self._result.edit.changes)
        try:
            stored = store_counterfactuals(self.database, self._source, [v.image],
                                           [CounterfactualInfo(edit, self._result.edit.after_text, v.seed,
                                                              model=model_identity(self._engine),
                                                              head_guidance=self._result.head_guidance)])
        except (ValueError, RuntimeError) as exc:
            self.status.setText(f"Saving failed: {exc}")
            return None
        self.status.setText(f"Saved as series {stored.series_number} (synthetic, excluded from report export).")
        self.stored.emit(stored)
        return stored

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Cancel any job and wait for it (call before the window closes)."""
        self._runner.cancel_all()
        self._runner.wait(10)
