"""Grids of viewports from 1x1 up to 4x4, one series each, with one active viewport highlighted."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QWidget

from viewer.io.refs import SeriesRef, StudyRef
from viewer.widgets.viewport import Viewport

LAYOUTS: dict[str, tuple[int, int]] = {
    "1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1), "1x3": (1, 3), "2x2": (2, 2), "2x3": (2, 3),
    "3x3": (3, 3), "3x4": (3, 4), "4x4": (4, 4),
}
MAX_VIEWPORTS = 16


class ViewerLayout(QWidget):
    """Owns up to sixteen viewports (made when a layout first needs them); shows rows x cols of them.
    Hidden viewports keep their series, so going 2x2 -> 1x1 -> 2x2 gives back what was there."""

    activeViewportChanged = Signal(object)
    imageChanged = Signal(object)  # the active viewport's image
    viewportCreated = Signal(object)

    def __init__(self, parent: QWidget | None = None, measurement_store: Any = None) -> None:
        super().__init__(parent)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self.setStyleSheet("background: #111;")
        self._study: StudyRef | None = None
        self._store = measurement_store
        self._viewports: list[Viewport] = []
        for _ in range(4):
            self._new_viewport()
        self._shape = (1, 1)
        self._active = self._viewports[0]
        self._active.set_active(True)
        self.set_grid(1, 1)

    def _new_viewport(self) -> Viewport:
        vp = Viewport(self, self._store)
        vp.activated.connect(self.set_active)
        vp.imageChanged.connect(lambda img, v=vp: self._image_changed(v, img))
        vp.seriesDropped.connect(lambda uid, v=vp: self._dropped(v, uid))
        vp.stateChanged.connect(lambda v=vp: self._sync_anonymise(v))
        if self._viewports:
            first = self._viewports[0]
            vp.set_tool(first.tool())
            vp.set_anonymised(first.anonymised())
            vp._smooth = first.smooth()
            vp.set_cine_fps(first.cine_fps())
        self._viewports.append(vp)
        self.viewportCreated.emit(vp)
        return vp

    # ---------------------------------------------------------------- layout
    def set_grid(self, rows: int, cols: int) -> None:
        if (rows, cols) not in LAYOUTS.values():
            raise ValueError(f"unsupported layout {rows}x{cols}; expected one of {list(LAYOUTS)}")
        while len(self._viewports) < rows * cols:
            vp = self._new_viewport()
            vp.set_measurement_store(self._store)
        for vp in self._viewports:
            self._grid.removeWidget(vp)
            vp.hide()
        for i in range(rows * cols):
            vp = self._viewports[i]
            self._grid.addWidget(vp, i // cols, i % cols)
            vp.show()
        self._shape = (rows, cols)
        if self._active not in self.viewports():
            self.set_active(self._viewports[0])
        self._fill_empty()

    def grid(self) -> tuple[int, int]:
        return self._shape

    def viewports(self) -> list[Viewport]:
        """The viewports now shown, in reading order."""
        return self._viewports[: self._shape[0] * self._shape[1]]

    def all_viewports(self) -> list[Viewport]:
        return list(self._viewports)

    # ---------------------------------------------------------------- active viewport
    def active_viewport(self) -> Viewport:
        return self._active

    def set_active(self, vp: Viewport) -> None:
        if vp is self._active:
            return
        self._active.set_active(False)
        self._active = vp
        vp.set_active(True)
        self.activeViewportChanged.emit(vp)
        self.imageChanged.emit(vp.current_image())

    # ---------------------------------------------------------------- content
    def set_study(self, study: StudyRef | None, measurement_store: Any = None) -> None:
        """Clear all viewports and put the study's first series into them, one per viewport."""
        self._study = study
        self._store = measurement_store
        for vp in self._viewports:
            vp.set_series(None)  # first: the new store then has no image to read (it reads the next series')
            vp.set_measurement_store(measurement_store)
        self.set_active(self._viewports[0])
        self._fill_empty()

    def study(self) -> StudyRef | None:
        return self._study

    def series_by_uid(self, uid: str) -> SeriesRef | None:
        if self._study is None:
            return None
        return next((s for s in self._study.series if s.series_uid == uid), None)

    def load_series(self, series: SeriesRef, viewport: Viewport | None = None) -> None:
        vp = viewport or self._active
        vp.set_series(series)
        self.set_active(vp)

    def _fill_empty(self) -> None:
        """Give each empty visible viewport the next series not shown yet (PACS 'hanging')."""
        if self._study is None or not self._study.series:
            return
        shown = {vp.series().series_uid for vp in self.viewports() if vp.series() is not None}
        queue = [s for s in self._study.series if s.series_uid not in shown and s.paths and not s.synthetic]
        for vp in self.viewports():
            if vp.series() is None and queue:
                vp.set_series(queue.pop(0))

    def _dropped(self, vp: Viewport, uid: str) -> None:
        series = self.series_by_uid(uid)
        if series is not None:
            self.load_series(series, vp)

    def _image_changed(self, vp: Viewport, image: Any) -> None:
        if vp is self._active:
            self.imageChanged.emit(image)

    def _sync_anonymise(self, source: Viewport) -> None:
        """Anonymising and smooth/pixelated display are for the whole screen: one viewport's toggle
        applies to all."""
        on, smooth = source.anonymised(), source.smooth()
        for vp in self._viewports:
            if vp is not source and vp.anonymised() != on:
                vp.set_anonymised(on)
            if vp is not source and vp.smooth() != smooth:
                vp._smooth = smooth
                vp.update()
