"""The images of one series, loaded on demand and kept in a small cache, for a viewport to scroll.

Qt-free. Loading a slice lazily keeps the first image fast on a 600-slice CT; the neighbours of the
slice shown are prefetched on a background thread so scrolling does not wait on disk.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from viewer.io.image import DicomImage, load_image
from viewer.io.refs import SeriesRef

_PREFETCH = ThreadPoolExecutor(max_workers=1, thread_name_prefix="series-prefetch")


class SeriesStack:
    """Lazy, cached access to a series' images in display order."""

    def __init__(self, series: SeriesRef, cache_size: int = 48) -> None:
        if not series.paths:
            raise ValueError(f"series {series.series_uid or '?'} has no files")
        self.series = series
        self.paths: tuple[Path, ...] = tuple(Path(p) for p in series.paths)
        self._cache: OrderedDict[int, DicomImage] = OrderedDict()
        self._errors: dict[int, str] = {}
        self._pending: dict[int, Future] = {}
        self._lock = threading.Lock()
        self._cache_size = max(4, cache_size)

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, index: int) -> DicomImage:
        """The image at `index`; raises ValueError with the reason when the file cannot be shown."""
        if not 0 <= index < len(self.paths):
            raise IndexError(f"slice {index} outside 0..{len(self.paths) - 1}")
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
            if index in self._errors:
                raise ValueError(self._errors[index])
            pending = self._pending.get(index)
        if pending is not None:
            pending.result()
            return self.image(index)
        return self._load(index)

    def _load(self, index: int) -> DicomImage:
        try:
            img = load_image(self.paths[index])
        except Exception as exc:  # any unreadable file becomes a message, never a crash
            msg = f"{self.paths[index].name}: {exc}"
            with self._lock:
                self._errors[index] = msg
            raise ValueError(msg) from exc
        with self._lock:
            self._cache[index] = img
            self._cache.move_to_end(index)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return img

    def frames(self, index: int) -> int:
        try:
            return max(1, int(self.image(index).n_frames))
        except (ValueError, IndexError):
            return 1

    def prefetch(self, center: int, radius: int = 3) -> None:
        """Start loading the slices around `center` in the background."""
        for i in sorted(range(center - radius, center + radius + 1), key=lambda i: abs(i - center)):
            if not 0 <= i < len(self.paths):
                continue
            with self._lock:
                if i in self._cache or i in self._errors or i in self._pending:
                    continue
                fut = _PREFETCH.submit(self._prefetch_one, i)
                self._pending[i] = fut

    def _prefetch_one(self, index: int) -> None:
        try:
            self._load(index)
        except ValueError:
            pass
        finally:
            with self._lock:
                self._pending.pop(index, None)
