"""One 2D viewport: paints a DICOM frame as its ViewState says and turns mouse/keys into state changes.

The widget holds no geometry maths of its own: `ViewState` (Qt-free) maps image <-> widget points, and
the painter uses the same matrix, so what the tests check on the state is what the user sees.

The GUI thread never decodes compressed pixels: a frame that is not decoded yet is prepared on the
shared background decode queue (JPEG 2000/HTJ2K first at the resolution that fits the viewport, then in
full), while the viewport paints what it has and stays responsive; the GUI thread only windows (one
table lookup at display size) and paints.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np
import shiboken6
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from explain.colormap import colorize, colormap_table
from viewer.imaging.presets import preset_table, preset_window
from viewer.imaging.render import render_frame, render_pixels
from viewer.imaging.window import PRESETS, WindowLevel, window_from_drag
from viewer.io.decode_queue import shared_queue
from viewer.io.image import DicomImage
from viewer.io.refs import SeriesRef
from viewer.io.series_stack import ImageNotHere, SeriesStack
from viewer.measure.store import InMemoryMeasurementStore
from viewer.models import measure_tool
from viewer.models.measurements import ImageMeasurements
from viewer.models.orientation import edge_labels, image_axes
from viewer.models.overlay_text import corner_texts
from viewer.models.tools import Tool, bindings
from viewer.models.view_state import ViewState
from viewer.presentation.apply import apply_presentation, fit_area
from viewer.presentation.gsps import PresentationState
from viewer.presentation.interest import LOCAL_TITLE
from viewer.presentation.study_objects import StudyObjects
from viewer.widgets.background import BackgroundRunner
from viewer.widgets.decode_notice import DONE, notifier
from viewer.widgets.note_editor import NoteEditor
from viewer.widgets.presentation_overlay import paint_caption, paint_key_mark, paint_presentation

SERIES_MIME = "application/x-radstation-series-uid"
HIT_TOLERANCE = 6.0  # widget pixels
MIN_DRAW = 3.0  # widget pixels a shape must span to count as drawn, not a stray click
ARROW_HEAD = 12.0  # widget pixels

_COLOR_SHAPE = QColor(80, 220, 120)
_COLOR_SELECTED = QColor(255, 210, 40)
_COLOR_ACTIVE = QColor(255, 170, 0)
ARRIVING = "arriving from the archive…"  # an image of a study being fetched whose file is not here yet


def _qimage(arr: np.ndarray) -> QImage:
    """Copy a uint8 HxW (grey), HxWx3 (RGB) or HxWx4 (RGBA) array into a QImage that owns its bytes."""
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8
    elif arr.shape[2] == 3:
        fmt = QImage.Format.Format_RGB888
    else:
        fmt = QImage.Format.Format_RGBA8888
    return QImage(arr.data, w, h, arr.strides[0], fmt).copy()


class Viewport(QWidget):
    """Shows one series (or one image); the workspace puts one to four of these in a layout."""

    imageChanged = Signal(object)  # the DicomImage now shown (or None)
    activated = Signal(object)  # self, when the user clicks into it
    stateChanged = Signal()
    measurementsChanged = Signal()
    seriesDropped = Signal(str)  # a series UID dragged here from the thumbnails
    imageShown = Signal(str)  # "preview" or "full": the current frame was painted at that quality
    overlayChanged = Signal()  # an AI map was set, removed, hidden or shown
    interestRequested = Signal(object)  # self: the reader pressed K to flag/unflag the image "Of Interest"

    def __init__(self, parent: QWidget | None = None, measurement_store: Any = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setAcceptDrops(True)
        self.setMinimumSize(120, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.state = ViewState()
        # the measurements, arrows and notes of the image on screen (Qt-free model; this widget draws them)
        self.measurements_model = ImageMeasurements(measurement_store)
        self.measurements_model.subscribe(_weak_listener(self))
        self._measure_runner: BackgroundRunner | None = None  # reads the shapes of each image from a database
        self._stack: SeriesStack | None = None
        self._series: SeriesRef | None = None
        self._image: DicomImage | None = None
        self._message = "Drop a series here"
        self._tool = Tool.WINDOW
        self._anonymised = False
        self._active = False
        self._drawing: list[tuple[float, float]] = []
        self._drag: dict[str, Any] | None = None
        self._editor: NoteEditor | None = None  # typing a text note or an arrow's label
        self._editor_target: dict[str, Any] | None = None
        self._wheel_accum = 0.0
        self._render_key: tuple | None = None
        self._render_img: QImage | None = None
        self._overlay: QImage | None = None
        self._overlay_params: dict[str, Any] = {}
        self._overlay_visible = True
        self._overlay_legend: QImage | None = None
        self._cine = QTimer(self)
        self._cine.timeout.connect(self._cine_tick)
        self._fps = 10.0
        self._queue = shared_queue()
        self._job: Any = None  # Future of the background preparation of what should be on screen
        self._job_key: tuple | None = None
        self._job_error = ""
        self._shown: tuple | None = None  # (image, frame, quality, preview size) last painted: imageShown fires on change
        self._notifier = notifier(self)  # the decode worker's way back to this widget, holding it weakly
        self._objects: StudyObjects | None = None  # the study's presentation states and key image selections
        self._presentation_on = True
        self._preferred_state = ""  # SOP Instance UID of the GSPS the reader picked among several
        self._smooth = True  # interpolated display; Shift+I shows the pixels as acquired
        self._notice = ""
        self._notice_timer = QTimer(self, singleShot=True, interval=2500)
        self._notice_timer.timeout.connect(self._clear_notice)
        self._arriving = False  # the open study is still being fetched: a missing file is "arriving", not an error
        self._interest: frozenset[str] = frozenset()  # SOP Instance UIDs flagged "Of Interest" here
        # the first image of a series just set: even a small uncompressed frame is read on the decode queue,
        # not in paint (a study switch's pixel read and window statistics stalled the GUI thread 20-60 ms)
        self._first_image: DicomImage | None = None
        self._defer_first = False

    # ================================================================ content
    def set_series(self, series: SeriesRef | None, start: int = 0) -> None:
        """Show `series` from slice `start` (view state reset, as when a radiologist opens a series)."""
        self.stop_cine()
        self._series = series
        self._stack = None
        self._first_image = None
        self.state = ViewState()
        if series is None:
            self._set_image(None, "Drop a series here")
            return
        try:
            self._stack = SeriesStack(series)
        except ValueError as exc:
            self._set_image(None, str(exc))
            return
        self.state.set_counts(len(self._stack), 1)
        self.state.slice_index = min(max(0, start), len(self._stack) - 1)
        self._defer_first = True
        self._show_position()

    def set_arriving(self, on: bool) -> None:
        """While the study's files are still being fetched, an image whose file is not here yet says
        "arriving…"; afterwards it is named as missing. The message on screen follows at once."""
        self._arriving = bool(on)
        if self._image is None and self._stack is not None:
            self._show_position()

    def refresh_arrived(self) -> bool:
        """Files arrived: show the current image if it was waiting for its file. Returns whether it did."""
        if self._image is not None or self._stack is None:
            return False
        if not 0 <= self.state.slice_index < len(self._stack):
            return False
        if not self._stack.paths[self.state.slice_index].exists():
            return False
        self._show_position()
        return self._image is not None

    def set_image(self, image: DicomImage) -> None:
        """Show a single image that is not part of a loaded series (e.g. from the tag browser)."""
        self.stop_cine()
        self._series, self._stack = None, None
        self._first_image = None
        self.state = ViewState()
        self.state.set_counts(1, image.n_frames)
        self._set_image(image, "")

    def series(self) -> SeriesRef | None:
        return self._series

    def current_image(self) -> DicomImage | None:
        return self._image

    def message(self) -> str:
        """What the viewport says instead of an image (empty while one is shown)."""
        return self._message

    def _show_position(self) -> None:
        if self._stack is None:
            return
        try:
            image = self._stack.image(self.state.slice_index)
        except ImageNotHere as exc:
            self._set_image(None, ARRIVING if self._arriving else f"Cannot display: {exc}", keep_state=True)
            return
        except (ValueError, IndexError) as exc:
            self._set_image(None, f"Cannot display: {exc}", keep_state=True)
            return
        self.state.frame_count = max(1, image.n_frames)
        self.state.frame_index = min(self.state.frame_index, self.state.frame_count - 1)
        self._first_image = image if self._defer_first else None
        self._defer_first = False
        self._set_image(image, "", keep_state=True)
        self._stack.prefetch(self.state.slice_index, prepare=self._prefetch_preparer())

    def _set_image(self, image: DicomImage | None, message: str, keep_state: bool = False) -> None:
        if image is not self._image:
            self.close_note_editor()  # what was typed goes to the image it was typed on
        changed = image is not self._image
        previous_uid = self._image.sop_instance_uid if self._image is not None else None
        self._image = image
        self._message = message
        if image is not None:
            self.state.set_image_size(image.columns, image.rows)
            if not keep_state:
                self.state.frame_index = 0
            rate = image.dataset.get("RecommendedDisplayFrameRate") or image.dataset.get("CineRate")
            if rate and not self._cine.isActive():
                try:
                    self.set_cine_fps(float(rate))
                except (TypeError, ValueError):
                    pass
        if image is None or image.sop_instance_uid != previous_uid:
            self._show_measurements(image.sop_instance_uid if image is not None else None)
        self._apply_presentation()
        self._drawing = []
        self._render_key = None
        if changed:
            self._job_error = ""
            self.imageChanged.emit(image)
        self._start_decode()
        self.stateChanged.emit()
        self.update()

    # ================================================================ window / presets
    def current_window(self) -> WindowLevel | None:
        """The window in use; None for colour, and while an automatic window waits for its pixels."""
        if self.state.window is not None:
            return self.state.window
        img = self._image
        if img is None or img.is_color or not (img.window_ready or self._cheap(img, 0)):
            return None
        return img.default_window

    def _cheap(self, img: DicomImage, frame: int) -> bool:
        """Whether the GUI thread may read this frame itself: decoded already, or a small uncompressed
        frame that is not the first image of a series just set (that one is read in the background)."""
        if img.frame_cached(frame):
            return True
        return img is not self._first_image and img.decode_is_cheap(frame)

    def set_window(self, window: WindowLevel | None) -> None:
        """Set the W/L (None = the header's default); kept while scrolling through the series."""
        self.state.window = window
        self._changed()

    def apply_preset(self, name: str) -> None:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        self.set_window(PRESETS[name])

    def apply_preset_key(self, key: int) -> None:
        """Keys 1-9: 1 is the header default; the others are the presets for this image's modality (HU
        presets on CT, histogram presets on radiographs/MR/US). A key without a preset says so."""
        img = self._image
        if key == 1 or img is None or img.is_color:
            self.set_window(None)
            return
        window = preset_window(img.modality, key, lambda: img.modality_frame(self.state.frame_index))
        if window is None:
            names = ", ".join(f"{k} {n}" for k, n in sorted(preset_table(img.modality).items()))
            self.show_notice(f"No preset on key {key} for {img.modality or 'this'} images ({names})")
            return
        self.set_window(window)

    def presets(self) -> dict[int, str]:
        """Key -> preset name for the image on screen (what the Presets menu lists)."""
        return preset_table(self._image.modality if self._image is not None else "")

    def show_notice(self, text: str) -> None:
        """A short message painted over the image for a moment (a key that did nothing, a mode change)."""
        self._notice = text
        self._notice_timer.start()
        self.update()

    def notice(self) -> str:
        return self._notice

    def _clear_notice(self) -> None:
        self._notice = ""
        self.update()

    def set_smooth(self, on: bool) -> None:
        self._smooth = bool(on)
        self.show_notice("Smooth display (interpolated)" if on else "Pixelated display (nearest neighbour)")
        self._changed()

    def smooth(self) -> bool:
        return self._smooth

    # ================================================================ navigation / cine
    def step(self, delta: int) -> None:
        if self._image is None and self._stack is None:
            return
        if self._stack is not None and delta:
            self._stack.direction = 1 if delta > 0 else -1  # look-ahead follows the scroll
        before = self.state.position()
        frames_of = self._stack.frames if self._stack is not None else (lambda _i: self.state.frame_count)
        self.state.step(delta, frames_of)
        if self.state.position() != before:
            if self._stack is not None and self.state.slice_index != before[0]:
                self._show_position()
            else:
                self._changed()

    def go_to(self, slice_index: int, frame_index: int = 0) -> None:
        if self._stack is None:
            self.state.frame_index = min(max(0, frame_index), self.state.frame_count - 1)
            self._changed()
            return
        self.state.slice_index = min(max(0, slice_index), self.state.slice_count - 1)
        self.state.frame_index = max(0, frame_index)
        self._show_position()

    def set_cine_fps(self, fps: float) -> None:
        if not (0.5 <= fps <= 120):
            raise ValueError(f"cine rate must be within 0.5..120 fps, got {fps}")
        self._fps = float(fps)
        self._cine.setInterval(round(1000.0 / self._fps))

    def cine_fps(self) -> float:
        return self._fps

    def toggle_cine(self) -> None:
        if self._cine.isActive():
            self.stop_cine()
        elif self.state.slice_count * self.state.frame_count > 1:
            self._cine.start(round(1000.0 / self._fps))

    def stop_cine(self) -> None:
        self._cine.stop()

    def is_playing(self) -> bool:
        return self._cine.isActive()

    def _cine_tick(self) -> None:
        if self.state.at_end():
            self.go_to(0, 0)
        else:
            self.step(1)

    # ================================================================ view commands
    def zoom_by(self, factor: float, anchor: tuple[float, float] | None = None) -> None:
        self.state.zoom_by(factor, self.width(), self.height(), anchor)
        self._changed()

    def fit(self) -> None:
        self.state.fit_to_window()
        self._changed()

    def actual_size(self) -> None:
        self.state.actual_size()
        self._changed()

    def flip_horizontal(self) -> None:
        self.state.toggle_flip_h()
        self._changed()

    def flip_vertical(self) -> None:
        self.state.toggle_flip_v()
        self._changed()

    def rotate(self, clockwise: bool = True) -> None:
        self.state.rotate_cw() if clockwise else self.state.rotate_ccw()
        self._changed()

    def invert(self) -> None:
        self.state.toggle_invert()
        self._changed()

    def reset_view(self) -> None:
        self.state.reset()
        self._changed()

    def set_anonymised(self, on: bool) -> None:
        self._anonymised = bool(on)
        self._changed()

    def anonymised(self) -> bool:
        return self._anonymised

    def set_active(self, on: bool) -> None:
        self._active = bool(on)
        self.update()

    def is_active(self) -> bool:
        return self._active

    def set_tool(self, tool: Tool | str) -> None:
        self.close_note_editor()
        self._tool = Tool(tool)
        self._drawing = []
        self.update()

    def tool(self) -> Tool:
        return self._tool

    def run_command(self, command: str) -> None:
        """Run a named command (the keys and the workspace toolbar both come here)."""
        if command.startswith("tool:"):
            self.set_tool(command.split(":", 1)[1])
            return
        if command.startswith("preset:"):
            self.apply_preset_key(int(command.split(":", 1)[1]))
            return
        page = max(1, min(10, self.state.slice_count * self.state.frame_count // 10 or 1))
        actions = {
            "window_default": lambda: self.set_window(None),
            "previous": lambda: self.step(-1),
            "next": lambda: self.step(1),
            "page_previous": lambda: self.step(-page),
            "page_next": lambda: self.step(page),
            "first": lambda: self.go_to(0, 0),
            "last": lambda: self.go_to(self.state.slice_count - 1, 10**9),
            "cine": self.toggle_cine,
            "anonymise": lambda: self.set_anonymised(not self._anonymised),
            "toggle_overlay": lambda: self.set_overlay_visible(not self._overlay_visible),
            "invert": self.invert,
            "flip_h": self.flip_horizontal,
            "flip_v": self.flip_vertical,
            "rotate_cw": lambda: self.rotate(True),
            "rotate_ccw": lambda: self.rotate(False),
            "fit": self.fit,
            "actual_size": self.actual_size,
            "zoom_in": lambda: self.zoom_by(1.25),
            "zoom_out": lambda: self.zoom_by(0.8),
            "reset_view": self.reset_view,
            "interpolation": lambda: self.set_smooth(not self._smooth),
            "delete_measurement": self.delete_selected_measurement,
            "undo_measurement": self.undo_measurement,
            "redo_measurement": self.redo_measurement,
            "toggle_interest": lambda: self.interestRequested.emit(self),
            "cancel": self._cancel,
        }
        if command not in actions:
            raise ValueError(f"unknown viewport command {command!r}")
        actions[command]()

    def _cancel(self) -> None:
        self._drawing = []
        self.measurements_model.select(None)
        self.update()

    def _changed(self) -> None:
        self.stateChanged.emit()
        self.update()

    # ================================================================ overlays
    def overlay_lines(self) -> dict[str, list[str]]:
        """The corner texts as painted (what the anonymise toggle acts on)."""
        if self._image is None:
            return {}
        window = self.current_window()
        label = window.label() if window is not None else ""
        return corner_texts(self._image, self.state, (self.width(), self.height()), self._anonymised, label)

    def orientation_labels(self) -> dict[str, str]:
        """Patient-direction letters for the four edges ({} when the header gives no orientation)."""
        if self._image is None:
            return {}
        axes = image_axes(self._image.dataset)
        return edge_labels(*axes, self.state) if axes is not None else {}

    def set_overlay(
        self,
        values: np.ndarray | None,
        opacity: float = 0.5,
        colormap: str = "jet",
        threshold: float | None = None,
        caption: str = "",
        scale: tuple[str, str] = ("0", "1"),
    ) -> None:
        """Paint a float map (e.g. an AI heat map, any HxW; stretched over the image) above the image.

        It follows zoom/pan/rotation/flip and is never written into the image pixels. None removes it.
        `caption` (what the map is: method, sentence or finding) is drawn with a colour bar whose ends are
        labelled `scale`; the key Y (command toggle_overlay) hides and shows it."""
        if values is None:
            self._overlay, self._overlay_params = None, {}
        else:
            rgba = colorize(values, colormap, opacity, threshold)
            self._overlay = _qimage(rgba)
            table = np.ascontiguousarray(np.repeat(colormap_table(colormap)[None], 8, axis=0))
            self._overlay_legend = _qimage(np.concatenate([table, np.full(table.shape[:2] + (1,), 255, np.uint8)],
                                                          axis=-1))
            self._overlay_params = {"opacity": opacity, "colormap": colormap, "threshold": threshold,
                                    "shape": tuple(np.shape(values)), "caption": caption, "scale": tuple(scale)}
            self._overlay_visible = True
        self.overlayChanged.emit()
        self.update()

    def overlay(self) -> dict[str, Any]:
        return {**self._overlay_params, "visible": self._overlay_visible} if self._overlay_params else {}

    def has_overlay(self) -> bool:
        return self._overlay is not None

    def overlay_visible(self) -> bool:
        return self._overlay is not None and self._overlay_visible

    def set_overlay_visible(self, on: bool) -> None:
        """Hide or show the map (kept while hidden; the image underneath is what the radiologist reads)."""
        self._overlay_visible = bool(on)
        self.overlayChanged.emit()
        self.update()

    def _paint_overlay_legend(self, p: QPainter) -> None:
        """The map's caption and a colour bar with its scale, bottom centre, above the corner texts."""
        params = self._overlay_params
        font = QFont(self.font())
        font.setPointSizeF(max(8.0, font.pointSizeF()))
        p.setFont(font)
        fm = p.fontMetrics()
        bar_w, bar_h = min(160, max(60, self.width() // 4)), 8
        lo, hi = params.get("scale", ("0", "1"))
        caption = str(params.get("caption") or "AI map")
        caption = fm.elidedText(caption, Qt.TextElideMode.ElideRight, max(80, self.width() - 24))
        y_bar = self.height() - 3 * fm.height() - 6
        x_bar = (self.width() - bar_w) / 2
        white = QColor(235, 235, 235)
        _shadow_text(p, QPointF((self.width() - fm.horizontalAdvance(caption)) / 2, y_bar - 4), caption, white)
        if self._overlay_legend is not None:
            p.drawImage(QRectF(x_bar, y_bar, bar_w, bar_h), self._overlay_legend)
        p.setPen(QPen(white, 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(QRectF(x_bar, y_bar, bar_w, bar_h))
        y_txt = y_bar + bar_h + fm.ascent() + 1
        _shadow_text(p, QPointF(x_bar - fm.horizontalAdvance(lo) - 4, y_bar + bar_h), lo, white)
        _shadow_text(p, QPointF(x_bar + bar_w + 4, y_bar + bar_h), hi, white)
        hint = "Y: hide map"
        _shadow_text(p, QPointF((self.width() - fm.horizontalAdvance(hint)) / 2, y_txt), hint, QColor(180, 180, 180))

    # ================================================================ measurements
    # The list, selection, undo/redo and persistence are `measurements_model`'s (viewer.models.measurements);
    # these methods are the viewport's commands on it (notices, the note editor) and shortcuts for callers.
    def _on_measurements(self, event: str) -> None:
        if not shiboken6.isValid(self):  # the model outlived its widget: nothing left to draw
            return
        if event == "changed":
            self.measurementsChanged.emit()
        self.update()

    def set_measurement_store(self, store: Any) -> None:
        """Where this viewport's measurements persist (None: an in-memory store for this session)."""
        self.measurements_model.set_store(store, reload=False)
        self._show_measurements(self.measurements_model.uid)

    def _show_measurements(self, uid: str | None) -> None:
        """The shapes of image `uid`: from a store in memory at once; from any other (the database) read off
        the GUI thread, so the image shows at once and its shapes when read (edits meanwhile are merged)."""
        model = self.measurements_model
        store = model.store
        if uid is None or isinstance(store, InMemoryMeasurementStore):
            model.show(uid)
            return
        ticket = model.begin_show(uid)
        if self._measure_runner is None:
            self._measure_runner = BackgroundRunner(self)
        self._measure_runner.start(
            lambda _job: store.load(uid) if model.awaits(ticket) else None,  # a stale read is skipped
            on_done=lambda records: model.finish_show(ticket, records),
            on_error=lambda exc: model.finish_show(ticket, error=exc))

    def measurements(self) -> list[Any]:
        return self.measurements_model.items()

    def measurement_labels(self) -> list[str]:
        return self.measurements_model.labels(self._image)

    def add_measurement(self, m: Any) -> None:
        """Add a measurement, arrow or text note to the image on screen (saved; Ctrl+Z takes it back)."""
        self.measurements_model.add(m)

    def select_measurement(self, index: int | None) -> None:
        self.measurements_model.select(index)

    def selected_measurement(self) -> int | None:
        return self.measurements_model.selected

    def rename_measurement(self, index: int, name: str) -> None:
        """Give a measurement a name shown above its value (e.g. 'RUL nodule'); an arrow's label, a note's text."""
        self.measurements_model.rename(index, name)

    def move_measurement(self, index: int, dx: float, dy: float) -> None:
        """Shift a measurement by (dx, dy) image pixels; the value is measured again where it lands."""
        self.measurements_model.move(index, dx, dy)

    def delete_measurement(self, index: int) -> None:
        self.measurements_model.delete(index)

    def delete_selected_measurement(self) -> None:
        self.measurements_model.delete_selected()

    def undo_measurement(self) -> None:
        """Take back the last add, move, rename or delete on the image on screen (saved at once)."""
        self.close_note_editor()  # the text being typed is kept first: a change like any other
        self.show_notice("Undone" if self.measurements_model.undo() else "Nothing to undo on this image")

    def redo_measurement(self) -> None:
        self.close_note_editor()
        self.show_notice("Redone" if self.measurements_model.redo() else "Nothing to redo on this image")

    # ---------------------------------------------------------------- text notes and arrow labels
    def edit_note(self, index: int) -> NoteEditor:
        """Type the text of note / label of arrow `index` over the image (Enter keeps it, Esc leaves it)."""
        m = self.measurements_model[index]
        at = self._to_widget(m.tail if m.kind == "arrow" else m.points()[0])
        return self._open_editor(at, {"index": index}, m.label, "Label (optional), Enter")

    def note_editor(self) -> NoteEditor | None:
        """The open note/label box, if any."""
        return self._editor

    def _open_editor(self, at: tuple[float, float], target: dict[str, Any], text: str, hint: str) -> NoteEditor:
        self.close_note_editor()
        self._editor_target = {**target, "uid": self._image.sop_instance_uid if self._image is not None else ""}
        self._editor = NoteEditor(self, QPoint(round(at[0]), round(at[1])), text, hint)
        self._editor.finished.connect(self._note_finished)
        return self._editor

    def close_note_editor(self) -> None:
        """Finish typing now, keeping the text (another image, another tool, the viewer closing)."""
        if self._editor is not None:
            self._editor.finish(True)

    def _note_finished(self, text: str, keep: bool) -> None:
        editor, target = self._editor, self._editor_target
        self._editor, self._editor_target = None, None
        if editor is not None and editor.hasFocus():
            self.setFocus(Qt.FocusReason.OtherFocusReason)
        if target is None or self._image is None or self._image.sop_instance_uid != target["uid"]:
            return
        text = text.strip()
        if target.get("index") is None:  # a new note: nothing typed (or Esc) places nothing
            if keep and text:
                self.add_measurement(measure_tool.note(target["anchor"], text, target["frame"]))
        elif keep and 0 <= target["index"] < len(self.measurements_model):
            self.rename_measurement(target["index"], text)
        self.update()

    def _on_this_frame(self, m: Any) -> bool:
        """Measurements belong to the frame they were drawn on (multi-frame US/XA)."""
        return getattr(m, "frame", 0) == self.state.frame_index

    def _hit_measurement(self, wx: float, wy: float) -> int | None:
        best, best_d = None, HIT_TOLERANCE
        items = self.measurements_model.items()
        if any(measure_tool.is_annotation(m) for m in items):
            for i, rect in self.label_rects().items():  # a note is picked by its text
                if measure_tool.is_annotation(items[i]) and rect.contains(QPointF(wx, wy)):
                    return i
        for i, m in enumerate(items):
            if not self._on_this_frame(m):
                continue
            pts = [self._to_widget(p) for p in measure_tool.points(m)]
            kind = measure_tool.kind(m)
            if kind in (Tool.RECT, Tool.ELLIPSE):
                path = self._shape_path(kind, pts)
                if path.contains(QPointF(wx, wy)):
                    return i
            for a, b in zip(pts, pts[1:], strict=False):
                d = _segment_distance((wx, wy), a, b)
                if d < best_d:
                    best, best_d = i, d
        return best

    # ================================================================ geometry helpers
    def _to_widget(self, p: tuple[float, float]) -> tuple[float, float]:
        return self.state.image_to_widget(p[0], p[1], self.width(), self.height())

    def _to_image(self, wx: float, wy: float) -> tuple[float, float]:
        return self.state.widget_to_image(wx, wy, self.width(), self.height())

    def _shape_path(self, kind: Tool, pts: list[tuple[float, float]]) -> QPainterPath:
        """Rect/ellipse outline in widget coords; built in image space so rotation keeps it exact."""
        path = QPainterPath()
        if len(pts) < 2:
            return path
        t = QTransform(*self.state.matrix(self.width(), self.height()))
        inv, _ = t.inverted()
        a, b = inv.map(QPointF(*pts[0])), inv.map(QPointF(*pts[1]))
        rect = QRectF(a, b).normalized()
        if kind == Tool.ELLIPSE:
            path.addEllipse(rect)
        else:
            path.addRect(rect)
        return t.map(path)

    # ================================================================ painting
    def _out_shape(self, img: DicomImage) -> tuple[int, int] | None:
        z = self.state.effective_zoom(self.width(), self.height())
        if z < 0.999:
            return (max(1, math.ceil(img.rows * z)), max(1, math.ceil(img.columns * z)))
        return None

    def _preview_target(self) -> int:
        """Long side, in image pixels, that the first (reduced-resolution) decode should reach."""
        return max(64, round(max(self.width(), self.height()) * self.devicePixelRatioF()))

    def _prefetch_preparer(self):  # noqa: ANN202 - a closure run on the decode queue
        """What a look-ahead job does to an image: decode its first frame and resample it to this
        viewport's display size, so scrolling onto it is a table lookup."""
        w, h = self.width(), self.height()
        zoom_state = ViewState()

        def prepare(img: DicomImage) -> None:
            zoom_state.set_image_size(img.columns, img.rows)
            z = zoom_state.effective_zoom(w, h)
            img.frame(0)
            if z < 0.999:
                img.reduced_frame(0, (max(1, math.ceil(img.rows * z)), max(1, math.ceil(img.columns * z))))
            if not img.is_color:
                _ = img.default_window

        return prepare

    @staticmethod
    def _prepare(img: DicomImage, frame: int, out_shape: tuple[int, int] | None, target: int,
                 on_preview: Callable[[], None] | None = None) -> None:
        """Runs on the decode queue: preview (JPEG 2000/HTJ2K), window statistics, full frame, display size.
        `on_preview` is called as soon as a preview can be shown."""
        if not img.frame_cached(frame) and img.can_preview:
            # a large image first at the level that fits a viewport half this size (a 3000^2 HTJ2K: 375^2,
            # ~1/200 of the full decode's time), then at the usual preview level, then in full (as OHIF)
            stages = (target // 2, target) if max(img.rows, img.columns) >= 2 * target else (target,)
            for stage in stages:
                if img.preview(frame, stage) is None:
                    continue
                if not img.is_color and not img.window_ready:
                    _ = img.default_window  # from the first preview: it shows at once
                if on_preview is not None:
                    on_preview()
        if not img.is_color and not img.window_ready:
            _ = img.default_window
        img.frame(frame)
        if out_shape is not None:
            img.reduced_frame(frame, out_shape)

    def _ensure_job(self, img: DicomImage, frame: int, out_shape: tuple[int, int] | None) -> None:
        key = (img, frame, out_shape)
        if self._job_key == key and self._job is not None:
            return
        if self._job is not None and not self._job.done():
            self._job.cancel()  # not started yet: the user moved on
        self._queue.drop(self)
        self._job_key = key
        target = self._preview_target()
        # a partial of the static method, not a lambda over self: the decode worker must never hold the widget;
        # it tells the GUI thread through the notifier, which holds this viewport weakly (no polling)
        job = self._queue.submit(
            functools.partial(Viewport._prepare, img, frame, out_shape, target, self._notifier.preview_ready),
            priority=0, owner=self)
        self._job = job
        job.add_done_callback(self._notifier.job_done)

    def decode_arrived(self, job: Future | None, what: str) -> None:
        """On the GUI thread, queued from the decode worker: the preview is ready or the job has ended."""
        if what == DONE:
            if job is not self._job:
                return  # a job the user has moved on from
            if not job.cancelled() and job.exception() is not None:
                self._job_error = f"Cannot display: {job.exception()}"
            self.measurements_model.forget_labels()
            self._render_key = None
            self._job, self._job_key = None, None
            self._first_image = None  # read once in the background: its other frames (cine) are read directly
            self.stateChanged.emit()
            self.update()
        elif self._job is not None and self._image is not None:
            preview = self._image.cached_preview(self.state.frame_index)
            key = self._render_key
            if preview is not None and (key is None or key[-1] != "preview" or key[4] != preview.shape):
                self._render_key = None  # the first preview, or a finer one
                self.update()

    def is_loading(self) -> bool:
        """Whether the frame on screen is still being decoded (a preview or nothing shown yet)."""
        return self._job is not None

    def _paintable(self, img: DicomImage, frame: int, out_shape: tuple[int, int] | None) -> bool:
        """Whether the GUI thread can render this frame now, without waiting for the decode queue."""
        ready = img.frame_cached(frame) and (out_shape is None or img.cached_reduced(frame, out_shape))
        return bool((ready or self._cheap(img, frame))
                    and (self.state.window is not None or img.window_ready or self._cheap(img, 0)))

    def _start_decode(self) -> None:
        """Queue the background decode of the frame about to be shown now, not at the first paint: the
        decode starts sooner, and `is_loading` is true from the moment an image is set until it is shown.
        A hidden viewport (another tab, a collapsed layout) decodes nothing until it is painted."""
        img = self._image
        if img is None or self._job_error or not self.isVisible():
            return
        frame, out_shape = self.state.frame_index, self._out_shape(img)
        if not self._paintable(img, frame, out_shape):
            self._ensure_job(img, frame, out_shape)

    def _rendered(self) -> tuple[QImage | None, str]:
        """The frame as display bytes and its quality ("full" / "preview"), or (None, "") while it is
        decoding or when it cannot be shown (then `_message` says why). Never decodes compressed pixels."""
        img = self._image
        if img is None:
            return None, ""
        frame = self.state.frame_index
        out_shape = self._out_shape(img)
        window = self.state.window
        # the image object itself (not id()): a freed image's id can be reused by the next slice
        key = (img, frame, window, self.state.invert, out_shape, "full")
        if key == self._render_key:
            return self._render_img, "full"
        if self._paintable(img, frame, out_shape):
            try:
                arr = render_frame(img, frame, window, invert=self.state.invert, out_shape=out_shape)
            except Exception as exc:  # undecodable pixels: tell the user, keep the app alive
                self._message = f"Cannot display: {exc}"
                self._render_key, self._render_img = key, None
                return None, ""
            self._render_img = _qimage(arr)
            self._render_key = key
            self._message = ""
            return self._render_img, "full"
        if self._job_error:
            self._message = self._job_error
            return None, ""
        self._ensure_job(img, frame, out_shape)
        preview = img.cached_preview(frame)
        if preview is not None and (window is not None or img.window_ready):
            pkey = (img, frame, window, self.state.invert, preview.shape, "preview")
            if pkey != self._render_key:
                self._render_img = _qimage(render_pixels(img, frame, preview, window, self.state.invert))
                self._render_key = pkey
            self._message = ""
            return self._render_img, "preview"
        if self._render_key is not None and self._render_key[0] is img and self._render_key[1] == frame:
            return self._render_img, "full"  # same frame at another zoom: Qt scales it until the resample lands
        self._message = "Loading…"
        return None, ""

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt API)
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.GlobalColor.black)
        qimg, quality = self._rendered()
        if qimg is not None:
            w, h = self.width(), self.height()
            p.save()
            p.setTransform(QTransform(*self.state.matrix(w, h)))
            z = self.state.effective_zoom(w, h)
            # pixels show when zoomed far in, or always when the user turned interpolation off (Shift+I)
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._smooth and z < 6.0)
            target = QRectF(0, 0, self.state.image_width, self.state.image_height)
            p.drawImage(target, qimg)
            if self._overlay is not None and self._overlay_visible:
                p.drawImage(target, self._overlay)
            p.restore()
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            self._paint_measurements(p)
            self._paint_study_objects(p)
            self._paint_corners(p)
            if self._overlay is not None and self._overlay_visible:
                self._paint_overlay_legend(p)
            if self._notice:
                fm = p.fontMetrics()
                box = QRectF(0, 0, min(self.width() - 16, fm.horizontalAdvance(self._notice) + 16), fm.height() + 8)
                box.moveCenter(QPointF(self.width() / 2, self.height() - 40))
                p.fillRect(box, QColor(0, 0, 0, 170))
                p.setPen(QColor(255, 230, 140))
                p.drawText(box, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextSingleLine, self._notice)
            if self.measurements_model.error:
                p.setPen(QColor(255, 90, 90))
                p.drawText(self.rect().adjusted(8, 8, -8, -8), Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                           self.measurements_model.error)
            if quality == "preview":
                p.setPen(QColor(255, 210, 40))
                p.drawText(self.rect().adjusted(8, 8, -8, -8), Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom,
                           "reduced resolution - loading full image")
        elif self._message:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect().adjusted(8, 8, -8, -8), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self._message)
        if self._active:
            p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            p.setPen(QPen(_COLOR_ACTIVE, 2))
            p.drawRect(self.rect().adjusted(1, 1, -1, -1))
        p.end()
        if qimg is not None:
            # each finer preview counts as shown too: the benchmark times every stage
            shown = (self._image, self.state.frame_index, quality, qimg.size().toTuple() if quality == "preview" else None)
            if shown != self._shown:
                self._shown = shown
                self.imageShown.emit(quality)

    def _label_font(self) -> QFont:
        font = QFont(self.font())
        font.setPointSizeF(max(8.0, font.pointSizeF()))
        return font

    def label_rects(self) -> dict[int, QRectF]:
        """Where each measurement's label box goes (widget coords): beside its shape, moved down past the
        labels placed before it so that no two overlap."""
        fm = QFontMetrics(self._label_font())
        placed: dict[int, QRectF] = {}
        model = self.measurements_model
        for i, m in enumerate(model.items()):
            if not self._on_this_frame(m):
                continue
            text = model.label(i, self._image)
            pts = [self._to_widget(q) for q in measure_tool.points(m)]
            if not pts or not text:
                continue
            lines = text.split("\n")
            width = max(fm.horizontalAdvance(s) for s in lines)
            if m.kind == "text":  # the note's top-left corner at its point
                x, y = pts[0][0] + 3, pts[0][1] + fm.ascent() + 2
            elif m.kind == "arrow":  # at the tail, away from the finding the tip points at
                (tx, ty), (sx, sy) = pts
                x = sx - width - 6 if sx < tx else sx + 6
                y = sy + fm.ascent() / 2
            else:
                x, y = max(q[0] for q in pts) + 6, min(q[1] for q in pts)
            x = max(3.0, min(x, self.width() - width - 4))
            y = max(y, fm.ascent() + 2)
            rect = QRectF(x - 3, y - fm.ascent() - 2, width + 6, len(lines) * fm.height() + 4)
            for _ in range(40):
                clash = next((r for r in placed.values() if r.intersects(rect)), None)
                if clash is None:
                    break
                rect.moveTop(clash.bottom() + 2)
            placed[i] = rect
        return placed

    def _paint_measurements(self, p: QPainter) -> None:
        p.setFont(self._label_font())
        rects = self.label_rects()
        model = self.measurements_model
        for i, m in enumerate(model.items()):
            if not self._on_this_frame(m):
                continue
            color = _COLOR_SELECTED if i == model.selected else _COLOR_SHAPE
            pts = [self._to_widget(q) for q in measure_tool.points(m)]
            self._paint_shape(p, measure_tool.kind(m), pts, color)
            if i in rects:
                self._paint_label(p, model.label(i, self._image), rects[i], color)
        if self._drawing:
            pts = [self._to_widget(q) for q in self._drawing]
            self._paint_shape(p, self._tool, pts, _COLOR_SELECTED)

    def _paint_shape(self, p: QPainter, kind: Tool, pts: list[tuple[float, float]], color: QColor) -> None:
        p.setPen(QPen(color, 1.5))
        p.setBrush(Qt.BrushStyle.NoBrush)
        if kind in (Tool.RECT, Tool.ELLIPSE):
            p.drawPath(self._shape_path(kind, pts))
        else:
            for a, b in zip(pts, pts[1:], strict=False):
                p.drawLine(QPointF(*a), QPointF(*b))
        if kind == Tool.ARROW and len(pts) == 2:
            p.setPen(QPen(color, 2.0))
            for barb in measure_tool.arrow_head(pts[0], pts[1], ARROW_HEAD):
                p.drawLine(QPointF(*pts[0]), QPointF(*barb))
            return
        for q in pts:
            p.drawEllipse(QPointF(*q), 2.5, 2.5)

    def _paint_label(self, p: QPainter, text: str, rect: QRectF, color: QColor) -> None:
        """The measurement's text on a dark box (placed by label_rects)."""
        fm = p.fontMetrics()
        p.fillRect(rect, QColor(0, 0, 0, 150))
        x, y = rect.left() + 3, rect.top() + fm.ascent() + 2
        for k, line in enumerate(text.split("\n")):
            _shadow_text(p, QPointF(x, y + k * fm.height()), line, color)

    def _paint_corners(self, p: QPainter) -> None:
        font = QFont(self.font())
        font.setPointSizeF(max(8.0, font.pointSizeF()))
        p.setFont(font)
        fm = p.fontMetrics()
        margin, lh = 6, fm.height()
        w, h = self.width(), self.height()
        white = QColor(235, 235, 235)
        for corner, lines in self.overlay_lines().items():
            for k, line in enumerate(lines):
                tw = fm.horizontalAdvance(line)
                x = margin if corner.endswith("left") else w - margin - tw
                if corner.startswith("top"):
                    y = margin + fm.ascent() + k * lh
                else:
                    y = h - margin - fm.descent() - (len(lines) - 1 - k) * lh
                _shadow_text(p, QPointF(x, y), line, white)
        for edge, text in self.orientation_labels().items():
            tw = fm.horizontalAdvance(text)
            x = {"left": margin, "right": w - margin - tw}.get(edge, (w - tw) / 2)
            y = {"top": margin + fm.ascent(), "bottom": h - margin - fm.descent()}.get(edge, h / 2 + fm.ascent() / 2)
            _shadow_text(p, QPointF(x, y), text, _COLOR_SELECTED)

    # ================================================================ presentation states and key images
    def set_study_objects(self, objects: StudyObjects | None) -> None:
        """The open study's GSPS and KOS objects: a GSPS referencing the shown image is applied (window,
        polarity, rotation/flip, area, annotations) while presentation states are on; key images are marked."""
        self._objects = objects
        self._preferred_state = ""
        self.state.extra.pop("gsps", None)
        self._apply_presentation()
        self.update()

    def study_objects(self) -> StudyObjects | None:
        return self._objects

    def set_presentation_enabled(self, on: bool) -> None:
        """Presentation states on (applied) or off (the image as its header says, annotations hidden)."""
        self._presentation_on = bool(on)
        self._apply_presentation()
        self._changed()

    def presentation_enabled(self) -> bool:
        return self._presentation_on

    def presentation_state(self) -> PresentationState | None:
        """The presentation state applied to the image on screen (None when off or none references it)."""
        return self.state.extra.get("gsps")

    def presentation_states(self) -> list[PresentationState]:
        """Every presentation state that references the image on screen, newest first."""
        if self._objects is None or self._image is None:
            return []
        return self._objects.states_for(self._image.sop_instance_uid)

    def next_presentation(self) -> None:
        """Apply the next of the image's presentation states (several viewers may have made one)."""
        states = self.presentation_states()
        if not states or not self._presentation_on:
            return
        current = self.presentation_state()
        i = next((k for k, st in enumerate(states) if st is current), -1)
        self._preferred_state = states[(i + 1) % len(states)].sop_instance_uid
        self._apply_presentation()
        self._changed()

    def key_image_titles(self) -> list[str]:
        """Titles of the key object selections that mark the image on screen ([] if it is not a key image), and
        the reader's own "Of Interest" flag."""
        if self._image is None:
            return []
        titles = [] if self._objects is None else self._objects.key_titles(self._image.sop_instance_uid,
                                                                            self.state.frame_index)
        if self._image.sop_instance_uid in self._interest:
            titles.append(LOCAL_TITLE)
        return titles

    def set_interest_marks(self, sop_uids: frozenset[str] | set[str]) -> None:
        """The images of the study flagged "Of Interest" on this workstation (marked like KOS key images)."""
        self._interest = frozenset(sop_uids)
        self.update()

    def is_of_interest(self) -> bool:
        return self._image is not None and self._image.sop_instance_uid in self._interest

    def _apply_presentation(self) -> None:
        """Apply the newest GSPS of the image on screen once; scrolling among the images one GSPS covers keeps
        the reader's own changes, leaving them goes back to the header's display."""
        img = self._image
        if img is None:
            return
        chosen = None
        if self._objects is not None and self._presentation_on:
            states = self._objects.states_for(img.sop_instance_uid)
            chosen = next((st for st in states if st.sop_instance_uid == self._preferred_state),
                          states[0] if states else None)
        applied = self.state.extra.get("gsps")
        if chosen is applied:
            return
        if chosen is None:
            self.state.extra.pop("gsps", None)
            self.state.reset()
            return
        pres = chosen.for_image(img.sop_instance_uid, self.state.frame_index)
        mono1 = str(img.dataset.get("PhotometricInterpretation", "")) == "MONOCHROME1"
        apply_presentation(self.state, pres, mono1, self.width(), self.height())
        self.state.extra["gsps"] = chosen
        self.state.extra["gsps_view"] = self._zoom_pan()
        self._render_key = None

    def _zoom_pan(self) -> tuple:
        return self.state.zoom, self.state.fit, self.state.pan_x, self.state.pan_y, self.state.rotation

    def _refit_presentation(self) -> None:
        """On resize, a GSPS's displayed area stays fitted unless the reader has zoomed or panned since."""
        state = self.presentation_state()
        if state is None or self._image is None or self.state.extra.get("gsps_view") != self._zoom_pan():
            return
        pres = state.for_image(self._image.sop_instance_uid, self.state.frame_index)
        if pres is not None:
            fit_area(self.state, pres.area, self.width(), self.height())
            self.state.extra["gsps_view"] = self._zoom_pan()

    def _paint_study_objects(self, p: QPainter) -> None:
        img = self._image
        top = 6.0 + 1.3 * p.fontMetrics().height()  # below the top orientation label
        top = paint_key_mark(p, self.key_image_titles(), self.width(), top)
        state = self.presentation_state()
        if img is None or state is None:
            return
        pres = state.for_image(img.sop_instance_uid, self.state.frame_index)
        if pres is None:
            return
        w, h = self.width(), self.height()
        a = pres.area
        x0, y0, x1, y1 = (a.x0, a.y0, a.x1, a.y1) if a is not None else (0, 0, img.columns, img.rows)
        corners = [self.state.image_to_widget(x, y, w, h) for x, y in ((x0, y0), (x1, y1))]
        area = QRectF(QPointF(*corners[0]), QPointF(*corners[1])).normalized()
        paint_presentation(p, pres, self._to_widget, area, state.layer_colors)
        states = self.presentation_states()
        which = f" {states.index(state) + 1}/{len(states)}" if len(states) > 1 and state in states else ""
        caption = f"GSPS{which}: {state.title()}"
        if state.skipped:
            caption += f" (not shown: {', '.join(state.skipped)})"
        paint_caption(p, caption, w, top, QColor(255, 200, 0))

    # ================================================================ input
    def mousePressEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        self.activated.emit(self)
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if self._image is None:
            return
        pos = e.position()
        button = e.button()
        if button == Qt.MouseButton.RightButton:
            self._drag = {"kind": "window", "start": pos, "window": self.current_window()}
        elif button == Qt.MouseButton.MiddleButton:
            self._drag = {"kind": "pan", "start": pos, "last": pos}
        elif button == Qt.MouseButton.LeftButton:
            ip = self._to_image(pos.x(), pos.y())
            if self._editor is not None:  # a click outside the box ends the typing (text kept)
                self.close_note_editor()
                return
            if self._tool == Tool.TEXT:
                self._open_editor((pos.x(), pos.y()), {"index": None, "anchor": ip, "frame": self.state.frame_index},
                                  "", "Type the note, Enter")
                return
            if self._tool.is_measurement or self._tool == Tool.ARROW:
                if self._tool == Tool.ANGLE and len(self._drawing) == 3:
                    self._drawing[2] = ip  # the click after the first arm places the second
                    self._finish_drawing()
                    return
                self._drawing = [ip, ip]
                self._drag = {"kind": "draw", "start": pos}
                return
            hit = self._hit_measurement(pos.x(), pos.y())
            if hit is not None:
                self.select_measurement(hit)  # and drag it to move it
                self._drag = {"kind": "move", "start": pos, "last": ip, "index": hit, "moved": False}
                return
            self.measurements_model.select(None)
            kind = {Tool.WINDOW: "window", Tool.PAN: "pan", Tool.ZOOM: "zoom"}[self._tool]
            self._drag = {"kind": kind, "start": pos, "last": pos, "window": self.current_window()}

    def mouseDoubleClickEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        """Double-click on an arrow or a note: type its text again."""
        pos = e.position()
        hit = self._hit_measurement(pos.x(), pos.y()) if self._image is not None else None
        if hit is not None and measure_tool.is_annotation(self.measurements_model[hit]):
            self._drag = None
            self.edit_note(hit)
            return
        super().mouseDoubleClickEvent(e)

    def mouseMoveEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        pos = e.position()
        if self._tool == Tool.ANGLE and len(self._drawing) == 3 and self._drag is None:
            self._drawing[2] = self._to_image(pos.x(), pos.y())
            self.update()
            return
        if self._drag is None:
            return
        kind = self._drag["kind"]
        start: QPointF = self._drag["start"]
        if kind == "window" and self._image is not None and self._drag["window"] is not None:
            dx, dy = pos.x() - start.x(), pos.y() - start.y()
            self.state.window = window_from_drag(self._drag["window"], dx, dy, self._image.value_range)
            self._changed()
        elif kind == "pan":
            last: QPointF = self._drag["last"]
            self.state.pan_by(pos.x() - last.x(), pos.y() - last.y())
            self._drag["last"] = pos
            self._changed()
        elif kind == "zoom":
            last = self._drag["last"]
            self.state.zoom_by(math.exp(-(pos.y() - last.y()) / 150.0), self.width(), self.height(),
                               (start.x(), start.y()))
            self._drag["last"] = pos
            self._changed()
        elif kind == "draw" and self._drawing:
            self._drawing[-1] = self._to_image(pos.x(), pos.y())
            self.update()
        elif kind == "move":
            ip = self._to_image(pos.x(), pos.y())
            last = self._drag["last"]
            if not self._drag["moved"]:
                self.measurements_model.remember()
            self.measurements_model.move(self._drag["index"], ip[0] - last[0], ip[1] - last[1], save=False)
            self._drag["last"] = ip
            self._drag["moved"] = True

    def mouseReleaseEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        if self._drag is None:
            return
        drag, self._drag = self._drag, None
        if drag["kind"] == "move" and drag["moved"]:
            self.measurements_model.save()
            return
        if drag["kind"] != "draw":
            return
        pos, start = e.position(), drag["start"]
        self._drawing[-1] = self._to_image(pos.x(), pos.y())
        if math.hypot(pos.x() - start.x(), pos.y() - start.y()) < MIN_DRAW:
            self._drawing = []  # a click, not a shape
            self.update()
            return
        if self._tool == Tool.ANGLE:
            self._drawing.append(self._drawing[-1])  # now the third point follows the mouse
            self.update()
            return
        self._finish_drawing()

    def _finish_drawing(self) -> None:
        pts, self._drawing = self._drawing, []
        try:
            m = measure_tool.build(self._tool, pts, self.state.frame_index)
        except ValueError:
            self.update()
            return
        self.add_measurement(m)
        if self._tool == Tool.ARROW:
            self.edit_note(len(self.measurements_model) - 1)

    def wheelEvent(self, e: QWheelEvent) -> None:  # noqa: N802
        delta = e.angleDelta().y()
        if delta == 0:
            return
        if e.modifiers() & Qt.KeyboardModifier.ControlModifier:
            pos = e.position()
            self.zoom_by(1.15 ** (delta / 120.0), (pos.x(), pos.y()))
        else:
            self._wheel_accum += delta / 120.0
            steps = int(self._wheel_accum)
            if steps:
                self._wheel_accum -= steps
                self.step(-steps)  # wheel away from the user goes back, as in PACS viewers
        e.accept()

    def keyPressEvent(self, e: QKeyEvent) -> None:  # noqa: N802
        key = e.key()
        mods = e.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if Qt.Key.Key_1 <= key <= Qt.Key.Key_9 and mods == Qt.KeyboardModifier.NoModifier:
            self.apply_preset_key(key - Qt.Key.Key_0)
            return
        text = QKeySequence(e.keyCombination()).toString()
        command = bindings().get(text)
        if command is None:
            super().keyPressEvent(e)
            return
        self.run_command(command)

    # ================================================================ drag and drop of series
    def dragEnterEvent(self, e) -> None:  # noqa: N802
        if e.mimeData().hasFormat(SERIES_MIME):
            e.acceptProposedAction()

    def dropEvent(self, e) -> None:  # noqa: N802
        if e.mimeData().hasFormat(SERIES_MIME):
            uid = bytes(e.mimeData().data(SERIES_MIME)).decode()
            e.acceptProposedAction()
            self.activated.emit(self)
            self.seriesDropped.emit(uid)

    def hideEvent(self, e) -> None:  # noqa: N802
        self.close_note_editor()  # another tab, reading mode, the window closing: what was typed is kept
        super().hideEvent(e)

    def resizeEvent(self, e) -> None:  # noqa: N802
        self._render_key = None
        self._refit_presentation()
        super().resizeEvent(e)


def _weak_listener(viewport: Viewport) -> Callable[[str], None]:
    """The viewport's listener on its own model, holding the viewport weakly: a strong one (the bound method)
    would make a reference cycle, so the widget would be freed by the cycle collector, which may run on any
    thread (a decode worker), and a QWidget deleted off the GUI thread crashes."""
    ref = weakref.ref(viewport)

    def listener(event: str) -> None:
        vp = ref()
        if vp is not None:
            vp._on_measurements(event)

    return listener


def _segment_distance(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / length2))
    return math.hypot(p[0] - (ax + t * dx), p[1] - (ay + t * dy))


def _shadow_text(p: QPainter, at: QPointF, text: str, color: QColor) -> None:
    """Text with a dark outline, legible on any grey level."""
    p.setPen(QColor(0, 0, 0))
    for ox, oy in ((-1, 0), (1, 0), (0, -1), (0, 1), (1, 1)):
        p.drawText(at + QPointF(ox, oy), text)
    p.setPen(color)
    p.drawText(at, text)
