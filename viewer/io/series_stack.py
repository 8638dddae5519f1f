"""The images of one series, loaded on demand and kept in a small cache, for a viewport to scroll.

Qt-free. Headers are read on demand (a few ms); pixels are decoded on the shared background decode
queue, ahead of the user in the direction they scroll, so a compressed series scrolls without the GUI
thread ever decoding. The cache is bounded by image count and by decoded bytes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from viewer.io.decode_queue import DecodeQueue, shared_queue
from viewer.io.image import DicomImage, load_image
from viewer.io.refs import SeriesRef

PIXEL_BUDGET = 1 << 30  # decoded bytes a series keeps before it forgets the least recently shown images


class ImageNotHere(ValueError):
    """The file of this image is not on disk (yet): not remembered as an error, so it shows once it arrives
    (a study fetched from the archive opens on its first image while the rest are still coming)."""


class SeriesStack:
    """Lazy, cached access to a series' images in display order."""

    def __init__(
        self, series: SeriesRef, cache_size: int = 48, queue: DecodeQueue | None = None, budget: int = PIXEL_BUDGET
    ) -> None:
        if not series.paths:
            raise ValueError(f"series {series.series_uid or '?'} has no files")
        self.series = series
        self.paths: tuple[Path, ...] = tuple(Path(p) for p in series.paths)
        self._cache: OrderedDict[int, DicomImage] = OrderedDict()
        self._errors: dict[int, str] = {}
        self._lock = threading.Lock()
        self._cache_size = max(4, cache_size)
        self._budget = budget
        self._queue = queue
        self.direction = 1

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def queue(self) -> DecodeQueue:
        if self._queue is None:
            self._queue = shared_queue()
        return self._queue

    def image(self, index: int) -> DicomImage:
        """The image at `index` (its header; pixels on demand); ValueError with the reason when the file
        cannot be shown."""
        if not 0 <= index < len(self.paths):
            raise IndexError(f"slice {index} outside 0..{len(self.paths) - 1}")
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
            if index in self._errors:
                raise ValueError(self._errors[index])
        return self._load(index)

    def cached(self, index: int) -> DicomImage | None:
        with self._lock:
            return self._cache.get(index)

    def _load(self, index: int, touch: bool = True) -> DicomImage:
        if not self.paths[index].exists():
            raise ImageNotHere(f"{self.paths[index].name}: not on this workstation")
        try:
            img = load_image(self.paths[index])
        except Exception as exc:  # any unreadable file becomes a message, never a crash
            msg = f"{self.paths[index].name}: {exc}"
            with self._lock:
                self._errors[index] = msg
            raise ValueError(msg) from exc
        with self._lock:
            existing = self._cache.get(index)
            if existing is not None:  # loaded meanwhile by the other thread: keep one object per file
                return existing
            self._cache[index] = img
            if not touch:
                self._cache.move_to_end(index, last=False)
            self._evict()
        return img

    def _evict(self) -> None:
        total = sum(im.cached_bytes() for im in self._cache.values())
        while len(self._cache) > 1 and (len(self._cache) > self._cache_size or total > self._budget):
            _, old = self._cache.popitem(last=False)
            total -= old.cached_bytes()

    def frames(self, index: int) -> int:
        try:
            return max(1, int(self.image(index).n_frames))
        except (ValueError, IndexError):
            return 1

    def prefetch(
        self,
        center: int,
        direction: int | None = None,
        ahead: int = 8,
        behind: int = 2,
        prepare: Callable[[DicomImage], object] | None = None,
    ) -> None:
        """Load (and `prepare`, e.g. decode at display size) the images ahead of `center` in the scroll
        direction, nearest first, on the background queue; earlier not-started prefetches are dropped."""
        if direction:
            self.direction = 1 if direction > 0 else -1
        d = self.direction
        order = [center + d * k for k in range(1, ahead + 1)] + [center - d * k for k in range(1, behind + 1)]
        queue = self.queue
        queue.drop(self)
        for rank, i in enumerate(order):
            if not 0 <= i < len(self.paths):
                continue
            with self._lock:
                if i in self._errors:
                    continue
            queue.submit(lambda i=i: self._prefetch_one(i, prepare), priority=1 + rank, owner=self)

    def _prefetch_one(self, index: int, prepare: Callable[[DicomImage], object] | None) -> None:
        try:
            img = self.cached(index) or self._load(index, touch=False)
            if prepare is not None:
                prepare(img)
        except Exception:  # noqa: BLE001 - shown as a message when the user reaches that slice
            pass
        with self._lock:
            self._evict()
