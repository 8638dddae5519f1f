"""Axial / coronal / sagittal reformats of a CT/MR volume with a linked crosshair and one shared W/L.

The index maths (which slice of which plane passes through the crosshair voxel) lives in
viewer.volume.mpr.MPRGeometry; the panes only draw slices with their true pixel aspect and report
clicks. The volume loads on a background thread with progress and cancel.
"""

from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QMouseEvent, QPainter, QPen, QWheelEvent
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from viewer.imaging.render import render_array
from viewer.imaging.window import PRESET_KEYS, PRESETS, WindowLevel, window_from_drag
from viewer.io.refs import SeriesRef
from viewer.models.orientation import direction_label
from viewer.volume.loader import VolumeCancelled, VolumeResult, load_volume
from viewer.volume.mpr import PLANES, MPRGeometry
from viewer.widgets.background import BackgroundRunner
from viewer.widgets.viewport import _qimage

PLANE_COLORS = {"axial": QColor(255, 200, 40), "coronal": QColor(80, 200, 255), "sagittal": QColor(120, 230, 120)}


class MprPane(QWidget):
    """One plane. Emits where the user clicked (slice row/col), wheel steps and right-drag W/L."""

    pointPicked = Signal(str, float, float)  # plane, row, col
    stepped = Signal(str, int)  # plane, delta
    windowDragged = Signal(float, float, bool)  # dx, dy, first event of the drag

    def __init__(self, plane: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plane = plane
        self.setMinimumSize(160, 160)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self._img = None
        self._shape = (1, 1)
        self._spacing = (1.0, 1.0)
        self._cross: tuple[float, float] | None = None
        self._lines: list[str] = []
        self._edges: dict[str, str] = {}
        self._drag: QPointF | None = None
        self._pan_from: QPointF | None = None
        self._picking = False
        self.zoom = 1.0
        self.pan = QPointF(0.0, 0.0)

    def show_slice(self, rgb8: np.ndarray, spacing: tuple[float, float], cross: tuple[int, int],
                   lines: list[str], edges: dict[str, str] | None = None) -> None:
        self._edges = edges or {}
        self._img = _qimage(rgb8)
        self._shape = rgb8.shape[:2]
        self._spacing = spacing
        self._cross = cross
        self._lines = lines
        self.update()

    def image_rect(self) -> QRectF:
        """Where the slice is drawn: fitted and centred with true proportions (mm), then zoomed/panned."""
        rows, cols = self._shape
        rs, cs = self._spacing
        w_mm, h_mm = cols * cs, rows * rs
        scale = min(self.width() / w_mm, self.height() / h_mm) * self.zoom
        w, h = w_mm * scale, h_mm * scale
        return QRectF((self.width() - w) / 2 + self.pan.x(), (self.height() - h) / 2 + self.pan.y(), w, h)

    def zoom_at(self, factor: float, at: QPointF) -> None:
        """Zoom keeping the slice point under `at` fixed (Ctrl+wheel)."""
        row, col = self.to_slice(at.x(), at.y())
        self.zoom = min(32.0, max(0.25, self.zoom * factor))
        nx, ny = self.to_widget(row, col)
        self.pan += QPointF(at.x() - nx, at.y() - ny)
        self.update()

    def reset_view(self) -> None:
        self.zoom, self.pan = 1.0, QPointF(0.0, 0.0)
        self.update()

    def to_widget(self, row: float, col: float) -> tuple[float, float]:
        r = self.image_rect()
        return r.x() + col / self._shape[1] * r.width(), r.y() + row / self._shape[0] * r.height()

    def to_slice(self, x: float, y: float) -> tuple[float, float]:
        r = self.image_rect()
        return (y - r.y()) / r.height() * self._shape[0], (x - r.x()) / r.width() * self._shape[1]

    def paintEvent(self, _e) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.GlobalColor.black)
        if self._img is not None:
            rect = self.image_rect()
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawImage(rect, self._img)
            if self._cross is not None:
                cx, cy = self.to_widget(self._cross[0] + 0.5, self._cross[1] + 0.5)
                others = [pl for pl in PLANES if pl != self.plane]
                # the vertical line is the plane whose slices are columns here, the horizontal one rows
                vertical, horizontal = (others[1], others[0]) if self.plane == "axial" else (
                    ("sagittal", "axial") if self.plane == "coronal" else ("coronal", "axial"))
                p.setPen(QPen(PLANE_COLORS[vertical], 1))
                p.drawLine(QPointF(cx, rect.top()), QPointF(cx, rect.bottom()))
                p.setPen(QPen(PLANE_COLORS[horizontal], 1))
                p.drawLine(QPointF(rect.left(), cy), QPointF(rect.right(), cy))
        font = QFont(self.font())
        font.setPointSizeF(max(8.0, font.pointSizeF()))
        p.setFont(font)
        fm = p.fontMetrics()
        for k, line in enumerate(self._lines):
            at = QPointF(6, 6 + fm.ascent() + k * fm.height())
            p.setPen(QColor(0, 0, 0))
            p.drawText(at + QPointF(1, 1), line)
            p.setPen(PLANE_COLORS[self.plane] if k == 0 else QColor(230, 230, 230))
            p.drawText(at, line)
        if self._img is not None:
            rect = self.image_rect()
            for edge, text in self._edges.items():
                tw = fm.horizontalAdvance(text)
                x = {"left": rect.left() + 4, "right": rect.right() - 4 - tw}.get(edge, rect.center().x() - tw / 2)
                y = {"top": rect.top() + 4 + fm.ascent(), "bottom": rect.bottom() - 4 - fm.descent()}.get(
                    edge, rect.center().y() + fm.ascent() / 2)
                p.setPen(QColor(0, 0, 0))
                p.drawText(QPointF(x + 1, y + 1), text)
                p.setPen(QColor(255, 210, 40))
                p.drawText(QPointF(x, y), text)
        p.setPen(QPen(PLANE_COLORS[self.plane], 2))
        p.drawRect(self.rect().adjusted(1, 1, -1, -1))
        p.end()

    def mousePressEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        if self._img is None:
            return
        if e.button() == Qt.MouseButton.LeftButton:
            self._picking = True
            self._pick(e.position())
        elif e.button() == Qt.MouseButton.RightButton:
            self._drag = e.position()
            self.windowDragged.emit(0.0, 0.0, True)
        elif e.button() == Qt.MouseButton.MiddleButton:
            self._pan_from = e.position()

    def mouseMoveEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        if self._picking:
            self._pick(e.position())
        elif self._pan_from is not None:
            self.pan += e.position() - self._pan_from
            self._pan_from = e.position()
            self.update()
        elif self._drag is not None:
            d = e.position() - self._drag
            self.windowDragged.emit(d.x(), d.y(), False)

    def mouseReleaseEvent(self, _e: QMouseEvent) -> None:  # noqa: N802
        self._picking = False
        self._drag = None
        self._pan_from = None

    def mouseDoubleClickEvent(self, _e: QMouseEvent) -> None:  # noqa: N802
        self.reset_view()

    def _pick(self, pos: QPointF) -> None:
        row, col = self.to_slice(pos.x(), pos.y())
        self.pointPicked.emit(self.plane, row, col)

    def wheelEvent(self, e: QWheelEvent) -> None:  # noqa: N802
        delta = e.angleDelta().y()
        if e.modifiers() & Qt.KeyboardModifier.ControlModifier:
            if delta:
                self.zoom_at(1.15 ** (delta / 120.0), e.position())
            return
        steps = round(delta / 120)
        if steps:
            self.stepped.emit(self.plane, -steps)


class MprView(QWidget):
    """Three linked planes of one series' volume. `load_series` loads in the background; `set_volume`
    shows an already loaded VolumeResult."""

    volumeLoaded = Signal(object)  # VolumeResult
    loadFailed = Signal(str)
    crosshairChanged = Signal(tuple)  # (z, y, x)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAutoFillBackground(True)
        pal = self.palette()
        pal.setColor(self.backgroundRole(), QColor(17, 17, 17))
        self.setPalette(pal)
        self.banner = QLabel(self)
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background:#5a4a00;color:#fff;padding:4px;")
        self.banner.hide()
        self.progress = QProgressBar(self)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel_load)
        bar = QHBoxLayout()
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.cancel_button)
        self._progress_row = QWidget(self)
        self._progress_row.setLayout(bar)
        self._progress_row.hide()
        self.panes = {plane: MprPane(plane, self) for plane in PLANES}
        grid = QGridLayout()
        grid.setSpacing(2)
        grid.addWidget(self.panes["axial"], 0, 0, 2, 1)
        grid.addWidget(self.panes["coronal"], 0, 1)
        grid.addWidget(self.panes["sagittal"], 1, 1)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        outer.addWidget(self.banner)
        outer.addWidget(self._progress_row)
        outer.addLayout(grid, 1)
        for pane in self.panes.values():
            pane.pointPicked.connect(self.pick)
            pane.stepped.connect(self.step)
            pane.windowDragged.connect(self._window_drag)
        self._runner = BackgroundRunner(self)
        self._cancel = threading.Event()
        self._done = [0, 0]
        self._progress_timer = QTimer(self)
        self._progress_timer.setInterval(50)
        self._progress_timer.timeout.connect(self._show_progress)
        self._volume: VolumeResult | None = None
        self._geometry: MPRGeometry | None = None
        self._cross = (0, 0, 0)
        self._window = WindowLevel(40.0, 400.0)
        self._drag_start: WindowLevel | None = None
        self._value_range = 1.0
        self._series: SeriesRef | None = None

    # ---------------------------------------------------------------- loading
    def load_series(self, series: SeriesRef, window: WindowLevel | None = None) -> None:
        """Load `series` as a volume off the GUI thread (progress bar + Cancel), then show it."""
        if self._series == series and self._volume is not None:
            if window is not None:
                self.set_window(window)
            return
        self.cancel_load()
        self._series = series
        self._cancel = threading.Event()
        self._done = [0, len(series.paths)]
        self.progress.setRange(0, max(1, len(series.paths)))
        self.progress.setValue(0)
        self.progress.setFormat("Loading volume %v / %m slices")
        self._progress_row.show()
        self._progress_timer.start()
        self._set_banner("")

        def progress(done: int, total: int) -> None:
            self._done = [done, total]

        cancel = self._cancel
        self._runner.submit(
            lambda: load_volume(series.paths, progress=progress, cancel=cancel),
            on_done=lambda vol: self._loaded(vol, window),
            on_error=self._failed,
        )

    def is_loading(self) -> bool:
        return self._runner.busy()

    def cancel_load(self) -> None:
        self._cancel.set()
        self._runner.cancel_all()
        self._progress_timer.stop()
        self._progress_row.hide()

    def _show_progress(self) -> None:
        done, total = self._done
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def _loaded(self, vol: VolumeResult, window: WindowLevel | None) -> None:
        self._progress_timer.stop()
        self._progress_row.hide()
        self.layout().activate()  # give the progress row's space back to the panes now
        self.set_volume(vol, window)
        self.volumeLoaded.emit(vol)

    def _failed(self, exc: BaseException) -> None:
        self._progress_timer.stop()
        self._progress_row.hide()
        msg = "Volume loading cancelled." if isinstance(exc, VolumeCancelled) else f"Cannot build a volume: {exc}"
        self._series = None
        self._set_banner(msg)
        self.loadFailed.emit(msg)

    def set_volume(self, vol: VolumeResult, window: WindowLevel | None = None) -> None:
        self._volume = vol
        self._geometry = MPRGeometry(vol.shape, vol.spacing_zyx, vol.flip_z)
        self._cross = self._geometry.center()
        arr = vol.array
        step = max(1, int(round((arr.size / 2_000_000) ** (1 / 3))))
        sample = arr[::step, ::step, ::step]
        self._value_range = float(sample.max()) - float(sample.min()) or 1.0
        self._window = window or vol.window or WindowLevel(
            float(np.percentile(sample, 50)), max(1.0, float(np.percentile(sample, 99.5) - np.percentile(sample, 0.5))),
            "auto")
        self._set_banner("\n".join(f"\u26a0 {w}" for w in vol.warnings))
        self._refresh()

    def volume(self) -> VolumeResult | None:
        return self._volume

    def warnings(self) -> list[str]:
        return list(self._volume.warnings) if self._volume is not None else []

    def banner_text(self) -> str:
        return self.banner.text() if not self.banner.isHidden() else ""

    def _set_banner(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.setVisible(bool(text))
        self.layout().activate()

    # ---------------------------------------------------------------- crosshair / slices / window
    def crosshair(self) -> tuple[int, int, int]:
        """The linked point as voxel (z, y, x)."""
        return self._cross

    def set_crosshair(self, zyx: tuple[int, int, int]) -> None:
        if self._geometry is None:
            return
        nz, ny, nx = self._geometry.shape
        z, y, x = (int(v) for v in zyx)
        self._cross = (min(max(z, 0), nz - 1), min(max(y, 0), ny - 1), min(max(x, 0), nx - 1))
        self.crosshairChanged.emit(self._cross)
        self._refresh()

    def slice_index(self, plane: str) -> int:
        if self._geometry is None:
            return 0
        return self._geometry.plane_index(plane, self._cross)

    def pick(self, plane: str, row: float, col: float) -> None:
        """A click at (row, col) of `plane`'s slice moves the other planes there."""
        if self._geometry is None:
            return
        self.set_crosshair(self._geometry.from_plane(plane, self.slice_index(plane), row, col))

    def step(self, plane: str, delta: int) -> None:
        z, y, x = self._cross
        axis = {"axial": 0, "coronal": 1, "sagittal": 2}[plane]
        moved = [z, y, x]
        moved[axis] += delta
        self.set_crosshair(tuple(moved))  # type: ignore[arg-type]

    def window(self) -> WindowLevel:
        return self._window

    def set_window(self, window: WindowLevel) -> None:
        """One W/L for all three planes."""
        self._window = window
        self._refresh()

    def _window_drag(self, dx: float, dy: float, first: bool) -> None:
        if first or self._drag_start is None:
            self._drag_start = self._window
        self.set_window(window_from_drag(self._drag_start, dx, dy, self._value_range))

    def keyPressEvent(self, e) -> None:  # noqa: N802
        key = e.key()
        if Qt.Key.Key_1 <= key <= Qt.Key.Key_9 and (key - Qt.Key.Key_0) in PRESET_KEYS:
            self.set_window(PRESETS[PRESET_KEYS[key - Qt.Key.Key_0]])
        elif key in (Qt.Key.Key_1, Qt.Key.Key_0, Qt.Key.Key_R) and self._volume is not None and self._volume.window:
            self.set_window(self._volume.window)
        else:
            super().keyPressEvent(e)

    def _refresh(self) -> None:
        if self._volume is None or self._geometry is None:
            return
        units = f" {self._volume.units}" if self._volume.units else ""
        for plane, pane in self.panes.items():
            index = self.slice_index(plane)
            values, spacing = self._geometry.slice(self._volume.array, plane, index)
            rgb = render_array(values, self._window)
            n = self._geometry.n_slices(plane)
            voxel = float(self._volume.array[self._cross])
            lines = [plane.title(), f"{index + 1}/{n}", self._window.label(), f"{voxel:.0f}{units} at crosshair"]
            pane.show_slice(rgb, spacing, self._geometry.to_plane(plane, self._cross), lines, self._edges(plane))

    def _edges(self, plane: str) -> dict[str, str]:
        """Orientation letters of `plane`'s pane from the volume's direction cosines."""
        d = np.array(self._volume.image.GetDirection(), dtype=float).reshape(3, 3)
        row_dir, col_dir, normal = d[:, 0], d[:, 1], d[:, 2]
        down_z = -normal if self._volume.flip_z else normal  # reformat rows run opposite to z when flipped
        right, down = {"axial": (row_dir, col_dir), "coronal": (row_dir, down_z), "sagittal": (col_dir, down_z)}[plane]
        return {"right": direction_label(right), "left": direction_label(-right),
                "bottom": direction_label(down), "top": direction_label(-down)}

    def pane_edges(self, plane: str) -> dict[str, str]:
        return dict(self.panes[plane]._edges)

    def pane_lines(self, plane: str) -> list[str]:
        return list(self.panes[plane]._lines)

