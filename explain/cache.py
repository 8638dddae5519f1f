"""Explanations cached per (study, report version, engine weights, settings): in memory (LRU) and on
disk as .npz, so toggling overlays or reopening a study never recomputes.

The key hashes the report *text* (any edit is a new version) and the engine's weights hash, so a
changed model or report can never show a stale map.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from explain.study import StudyExplanation

# How the maps are computed; raised when a change makes earlier cached maps wrong (2: the image uncertainty map
# from random masks instead of the sampler's commit-time entropy, which painted the unmasking order).
MAPS_VERSION = 2


def explanation_key(study: str, report_text: str, engine: str, settings: dict | None = None) -> str:
    """Stable hex key of one explanation (settings: methods, K, steps... anything that changes it)."""
    if not isinstance(study, str) or not study:
        raise ValueError("study key is empty")
    payload = json.dumps({"study": study, "report": report_text, "engine": engine, "settings": settings or {},
                          "maps": MAPS_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class ExplanationCache:
    """Thread-safe LRU of StudyExplanations with an optional on-disk layer (`directory`)."""

    def __init__(self, directory: str | Path | None = None, capacity: int = 32) -> None:
        if capacity < 1:
            raise ValueError(f"cache capacity must be >= 1, got {capacity}")
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity
        self._mem: OrderedDict[str, StudyExplanation] = OrderedDict()
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{key}.npz"

    def get(self, key: str) -> StudyExplanation | None:
        with self._lock:
            if key in self._mem:
                self._mem.move_to_end(key)
                return self._mem[key]
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                value = StudyExplanation.from_arrays({k: z[k] for k in z.files})
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            path.unlink(missing_ok=True)  # a torn or foreign file is a miss, not an error
            return None
        self._remember(key, value)
        return value

    def put(self, key: str, value: StudyExplanation) -> None:
        self._remember(key, value)
        path = self._path(key)
        if path is not None:
            fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
            os.close(fd)
            try:
                np.savez_compressed(tmp, **value.to_arrays())
                os.replace(tmp, path)  # atomic: a reader never sees half a file
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)

    def _remember(self, key: str, value: StudyExplanation) -> None:
        with self._lock:
            self._mem[key] = value
            self._mem.move_to_end(key)
            while len(self._mem) > self.capacity:
                self._mem.popitem(last=False)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            if key in self._mem:
                return True
        path = self._path(key)
        return path is not None and path.exists()
