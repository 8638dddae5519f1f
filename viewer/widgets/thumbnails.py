"""The series strip: one icon per series; click or drag one onto a viewport to show it there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem, QWidget

from viewer.imaging.render import render_frame, render_pixels
from viewer.io.image import load_image, resample
from viewer.io.refs import SeriesRef, StudyRef
from viewer.widgets.background import BackgroundRunner
from viewer.widgets.viewport import SERIES_MIME, _qimage

ICON = 96
UID_ROLE = Qt.ItemDataRole.UserRole
ICON_ROLE = Qt.ItemDataRole.UserRole + 1  # the rendered icon before badges
KEY_BADGE = QColor(255, 215, 0)
HEADING_ROLE = Qt.ItemDataRole.UserRole + 2
DERIVED_COLOR = QColor(120, 200, 230)


def _with_key_badge(pix: QPixmap, count: int) -> QPixmap:
    """`pix` with a gold star and the number of key images in its top-right corner (unchanged for 0)."""
    if count <= 0:
        return pix
    out = QPixmap(pix)
    p = QPainter(out)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    p.setPen(QColor(0, 0, 0))
    p.setBrush(KEY_BADGE)
    p.drawRoundedRect(ICON - 34, 2, 32, 18, 4, 4)
    p.setPen(QColor(0, 0, 0))
    p.drawText(ICON - 34, 2, 32, 18, Qt.AlignmentFlag.AlignCenter, f"\u2605{count}")
    p.end()
    return out


def _preview_path(series: SeriesRef) -> Path:
    return Path(series.paths[len(series.paths) // 2])


def thumbnail_array(series: SeriesRef, size: int = ICON) -> np.ndarray:
    """The middle image of `series` rendered with its header window, longest side `size` pixels."""
    if not series.paths:
        raise ValueError("series has no files")
    image = load_image(_preview_path(series))
    scale = size / max(image.rows, image.columns)
    out = (max(1, round(image.rows * scale)), max(1, round(image.columns * scale)))
    frame = image.n_frames // 2
    preview = image.preview(frame, size) if image.can_preview else None  # JPEG 2000: a fraction of a decode
    if preview is not None:
        return resample(render_pixels(image, frame, preview, None), out)
    return render_frame(image, frame, None, out_shape=out)


class SeriesThumbnails(QListWidget):
    """Vertical strip of series icons. Icons render on a background thread."""

    seriesActivated = Signal(object)  # SeriesRef clicked

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.TopToBottom)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setIconSize(QSize(ICON, ICON))
        self.setSpacing(4)
        self.setWordWrap(True)
        self.setUniformItemSizes(True)
        self.setGridSize(QSize(ICON + 40, ICON + 44))
        self.setFixedWidth(ICON + 58)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setStyleSheet("QListWidget { background: #1b1b1b; color: #ddd; }")
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys keep going to the viewport after a click
        self._series: dict[str, SeriesRef] = {}
        self._pending: set[str] = set()
        self._key_counts: dict[str, int] = {}
        self._waiting: set[str] = set()  # series whose preview file is not here yet (fetch from the archive)
        self._runner = BackgroundRunner(self)
        self.itemClicked.connect(self._clicked)

    def set_study(self, study: StudyRef | None) -> None:
        self._runner.cancel_all()
        self.clear()
        self._series = {}
        self._pending = set()
        self._waiting = set()
        self._key_counts = {}
        if study is None:
            return
        placeholder = QPixmap(ICON, ICON)
        placeholder.fill(QColor(40, 40, 40))
        acquired = [s for s in study.series if not s.synthetic]
        synthetic = [s for s in study.series if s.synthetic]
        for s in acquired + synthetic:
            if s is (synthetic[0] if synthetic else None):
                self.addItem(self._group_header("SYNTHETIC\nnot for diagnosis"))
            self._series[s.series_uid] = s
            n = len(s.paths)
            label = " ".join(x for x in (s.modality, str(s.number) if s.number is not None else "",
                                         f"\u00b7 {n} img") if x)
            desc = s.description if len(s.description) <= 18 else s.description[:17] + "\u2026"
            item = QListWidgetItem(QIcon(placeholder), f"{label}\n{desc}" if desc else label)
            item.setData(UID_ROLE, s.series_uid)
            item.setToolTip(f"{s.description or 'series'} \u2014 {n} file(s)\n{s.series_uid}")
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            if s.synthetic:
                item.setForeground(QColor(255, 120, 120))
            self.addItem(item)
            self._render_icon(s)

    def _render_icon(self, s: SeriesRef) -> None:
        self._pending.add(s.series_uid)
        self._runner.submit(
            thumbnail_array, s,
            on_done=lambda arr, uid=s.series_uid: self._icon_ready(uid, arr),
            on_error=lambda exc, uid=s.series_uid: self._icon_failed(uid, exc),
        )

    def refresh_arrived(self) -> None:
        """Files arrived: render the icons that were waiting for theirs."""
        for uid in sorted(self._waiting):
            series = self._series.get(uid)
            if series is not None and _preview_path(series).exists():
                self._waiting.discard(uid)
                self._render_icon(series)

    def stop_waiting(self) -> None:
        """The fetch ended: icons still without their file say so instead of waiting for it."""
        self.refresh_arrived()
        for uid in sorted(self._waiting):
            item = self._item_for(uid)
            if item is not None:
                item.setToolTip(f"{item.toolTip()}\nNo preview: its image is not on this workstation")
        self._waiting = set()

    def waiting_for_files(self) -> set[str]:
        """Series whose preview image has not arrived yet."""
        return set(self._waiting)

    @staticmethod
    def _group_header(text: str) -> QListWidgetItem:
        """A label row between acquired and synthetic series (not selectable, not draggable)."""
        item = QListWidgetItem(text)
        item.setFlags(Qt.ItemFlag.NoItemFlags)
        item.setForeground(QColor(255, 120, 120))
        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
        item.setData(HEADING_ROLE, "synthetic")
        return item

    def series_uids(self) -> list[str]:
        return [u for i in range(self.count()) if (u := self.item(i).data(UID_ROLE))]

    def series_ref(self, uid: str) -> SeriesRef | None:
        return self._series.get(uid)

    def icons_ready(self) -> bool:
        return not self._pending

    def _item_for(self, uid: str) -> QListWidgetItem | None:
        for i in range(self.count()):
            if self.item(i).data(UID_ROLE) == uid:
                return self.item(i)
        return None

    def _icon_ready(self, uid: str, arr: np.ndarray) -> None:
        self._pending.discard(uid)
        item = self._item_for(uid)
        if item is None:
            return
        pix = QPixmap(ICON, ICON)
        pix.fill(QColor(0, 0, 0))
        img = _qimage(arr)
        p = QPainter(pix)
        p.drawImage((ICON - img.width()) // 2, (ICON - img.height()) // 2, img)
        p.end()
        item.setData(ICON_ROLE, pix)
        item.setIcon(QIcon(_with_key_badge(pix, self._key_counts.get(uid, 0))))

    def set_key_image_counts(self, counts: dict[str, int]) -> None:
        """Mark series holding key images (from KOS objects): a gold star with the count on the icon, a line in
        the tooltip."""
        self._key_counts = {uid: n for uid, n in counts.items() if n > 0}
        for i in range(self.count()):
            item = self.item(i)
            uid = item.data(UID_ROLE)
            if not uid:
                continue
            n = self._key_counts.get(uid, 0)
            tip = item.toolTip().split("\n\u2605", 1)[0]
            item.setToolTip(tip + (f"\n\u2605 {n} key image{'s' if n != 1 else ''}" if n else ""))
            base = item.data(ICON_ROLE)
            if base is not None:
                item.setIcon(QIcon(_with_key_badge(base, n)))

    def mark_derived(self, uids: tuple[str, ...] | list[str]) -> None:
        """Put a 'Derived - not acquired' heading above the first of the derived series (SEG, Parametric Map,
        AI captures: listed after the acquired ones) and say so in their tooltips."""
        derived = set(uids)
        rows = [i for i in range(self.count()) if self.item(i).data(UID_ROLE) in derived]
        if not rows:
            return
        heading = QListWidgetItem("DERIVED\nnot acquired")
        heading.setFlags(Qt.ItemFlag.NoItemFlags)
        heading.setForeground(DERIVED_COLOR)
        heading.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
        heading.setData(HEADING_ROLE, "derived")
        for i in rows:
            item = self.item(i)
            item.setToolTip(f"Derived object (not acquired, never report evidence)\n{item.toolTip()}")
            item.setForeground(DERIVED_COLOR)
        self.insertItem(rows[0], heading)

    def headings(self) -> list[tuple[int, str]]:
        """(row, text) of the group headings in the strip."""
        return [(i, self.item(i).text()) for i in range(self.count()) if self.item(i).data(HEADING_ROLE)]

    def key_image_count(self, uid: str) -> int:
        return self._key_counts.get(uid, 0)

    def _icon_failed(self, uid: str, exc: BaseException) -> None:
        self._pending.discard(uid)
        item = self._item_for(uid)
        series = self._series.get(uid)
        if series is not None and series.paths and not _preview_path(series).exists():
            self._waiting.add(uid)  # not here yet: drawn when it arrives (refresh_arrived)
            return
        if item is not None:
            item.setToolTip(f"{item.toolTip()}\nNo preview: {exc}")

    def _clicked(self, item: QListWidgetItem) -> None:
        series = self._series.get(item.data(UID_ROLE))
        if series is not None:
            self.seriesActivated.emit(series)

    def mimeData(self, items) -> QMimeData:  # noqa: N802 (Qt API)
        mime = QMimeData()
        if items:
            mime.setData(SERIES_MIME, str(items[0].data(UID_ROLE)).encode())
        return mime

    def mimeTypes(self) -> list[str]:  # noqa: N802
        return [SERIES_MIME]
