"""The local image store as a bounded LRU cache of the archive, with pins for studies in progress.

The shared database lists every study; the files of a study live in the store under its own folder
(app.importer.store.relative_path: <study>/<series>/<instance>.dcm). When the store is over its limit the
study folders opened least recently are deleted until it is under it again; the database rows stay, so the
study is still listed and is fetched again from the PACS when next opened (app.archive.fetch). A pinned
study (kept on this workstation by the user, open now, or its report not yet signed) is never evicted. When
each study was last opened is this workstation's own business, kept in a small JSON file in the store; the
user's pins are kept in the database (app.archive.pins, one row per workstation) when a `CachePins` is
given, so they survive restarts, else in the same JSON file.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from app.archive.pins import CachePins
from app.importer.store import safe_component

STATE_FILE = ".cache-state.json"


@dataclass(frozen=True)
class CachedStudy:
    study_uid: str
    folder: Path
    size: int
    last_used: float
    pinned: bool


class StudyCache:
    """`limit_bytes` of DICOM files at most under `root` (0: no limit); touch() on open, pin() while in progress."""

    def __init__(self, root: Path, limit_bytes: int = 0, pins: CachePins | None = None) -> None:
        self.root = Path(root)
        self.limit_bytes = max(0, int(limit_bytes))
        self.pins = pins
        self._lock = threading.Lock()
        self._state = self._load()

    # -- what the viewer and the report workflow tell it ------------------------------------------------
    def touch(self, study_uid: str, when: float | None = None) -> None:
        """The study was opened now: it becomes the most recently used."""
        with self._lock:
            self._state["used"][study_uid] = float(when if when is not None else time.time())
            self._save()

    def pin(self, study_uid: str, reason: str = "in progress") -> None:
        """Never evict `study_uid` (with a CachePins: `reason` is who pinned it)."""
        if self.pins is not None:
            self.pins.pin(study_uid, by=reason if reason != "in progress" else "")
            return
        with self._lock:
            self._state["pins"][study_uid] = reason
            self._save()

    def unpin(self, study_uid: str) -> None:
        if self.pins is not None:
            self.pins.unpin(study_uid)
            return
        with self._lock:
            if self._state["pins"].pop(study_uid, None) is not None:
                self._save()

    def pinned(self) -> dict[str, str]:
        """{study uid: why it is kept}."""
        if self.pins is not None:
            return {uid: pin.describe() for uid, pin in self.pins.all().items()}
        with self._lock:
            return dict(self._state["pins"])

    def remove(self, study_uid: str) -> int:
        """Delete the study's files from this workstation (its rows stay: fetched again when opened); returns
        the bytes freed. The caller checks first that it may go (ArchiveFetchController.removal_refused)."""
        folder = self.root / safe_component(study_uid)
        if not folder.is_dir():
            return 0
        size = _tree_size(folder)
        shutil.rmtree(folder)
        with self._lock:
            self._state["used"].pop(study_uid, None)
            self._save()
        return size

    # -- what is in it ----------------------------------------------------------------------------------
    def studies(self) -> list[CachedStudy]:
        """Every study folder in the store, least recently used first."""
        pins = self.pinned()
        with self._lock:
            used = dict(self._state["used"])
        uid_of = {safe_component(uid): uid for uid in {**used, **pins}}
        out = []
        for folder in self.root.iterdir() if self.root.is_dir() else ():
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            uid = uid_of.get(folder.name, folder.name)
            size = _tree_size(folder)
            last = used.get(uid, _newest_mtime(folder))  # never opened here: when its files arrived
            out.append(CachedStudy(uid, folder, size, last, uid in pins))
        return sorted(out, key=lambda s: s.last_used)

    def usage(self) -> int:
        return sum(s.size for s in self.studies())

    def holds(self, study_uid: str) -> bool:
        return (self.root / safe_component(study_uid)).is_dir()

    # -- keeping it bounded -----------------------------------------------------------------------------
    def evict(self, keep: set[str] | frozenset[str] = frozenset(), limit_bytes: int | None = None) -> list[CachedStudy]:
        """Delete the least recently used unpinned studies (never those in `keep`) until the store is within
        the limit; returns what was deleted. Over the limit with only pinned studies left, it stops there."""
        limit = self.limit_bytes if limit_bytes is None else max(0, int(limit_bytes))
        if not limit:
            return []
        studies = self.studies()
        total = sum(s.size for s in studies)
        evicted = []
        for study in studies:
            if total <= limit:
                break
            if study.pinned or study.study_uid in keep:
                continue
            shutil.rmtree(study.folder, ignore_errors=True)
            if not study.folder.exists():
                total -= study.size
                evicted.append(study)
        if evicted:
            with self._lock:
                for study in evicted:
                    self._state["used"].pop(study.study_uid, None)
                self._save()
        return evicted

    # -- state file -------------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    def _load(self) -> dict[str, dict]:
        try:
            raw = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet, or damaged: only the LRU order is lost, never images
            raw = {}
        used = raw.get("used") if isinstance(raw, dict) else None
        pins = raw.get("pins") if isinstance(raw, dict) else None
        return {"used": {str(k): float(v) for k, v in (used or {}).items() if isinstance(v, int | float)},
                "pins": {str(k): str(v) for k, v in (pins or {}).items()}}

    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f"{STATE_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(self._state, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.state_path)


def _tree_size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def _newest_mtime(folder: Path) -> float:
    newest = 0.0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
            except OSError:
                continue
    return newest

