"""Fetch on open, in the GUI: a study listed in the (shared) database whose files this workstation lacks is
fetched from the archive node in the background, with progress in the status bar, and opened as soon as its
first image is here (`firstImage`), the others filling in as they arrive; the local store is then trimmed to its limit (app.archive.cache), keeping the open study and every
study whose report is in progress.

Settings key `archive`: {"node": "<saved PACS node name>", "cache_limit_gb": 0 (no limit)}. Without a node,
opening a study whose files are missing says so, as before.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.archive.cache import StudyCache
from app.archive.fetch import (
    IN_PROGRESS,
    FetchResult,
    fetch_study,
    missing_instances,
    report_status,
    studies_in_progress,
)
from app.archive.pins import CachePins
from app.db.database import Database
from app.pacs.errors import PacsConfigError
from app.pacs.nodes import NodeStore, PacsNode
from app.settings import Settings, current_settings
from app.widgets.pacs_worker import start_worker
from viewer.widgets.background import BackgroundRunner, Job

KEY = "archive"
log = logging.getLogger(__name__)


class ArchiveFetchController(QObject):
    progress = Signal(str, int, int, str)  # study uid, files here, files missing at the start, sentence
    firstImage = Signal(str)  # study uid: the first of its missing files is here, the study can open
    fetched = Signal(str, str)  # study uid, what happened
    failed = Signal(str, str)  # study uid, why (for the status bar / a message box)

    def __init__(self, database: Database, node: PacsNode, cache_limit_bytes: int = 0,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.database, self.node = database, node
        self.pins = CachePins(database)
        self.cache = StudyCache(database.store_dir, cache_limit_bytes, pins=self.pins)
        self._runner = BackgroundRunner(self)
        self._worker: Job | None = None
        self._study = ""
        self._placed = 0  # files of the study being fetched placed so far
        self._evicting = threading.Lock()

    @classmethod
    def from_settings(cls, database: Database, settings: Settings | None = None,
                      parent: QObject | None = None) -> ArchiveFetchController | None:
        """A controller per the `archive` settings; None when no archive node is set."""
        raw: Any = (settings or current_settings()).get(KEY, {}) or {}
        if not isinstance(raw, dict) or not str(raw.get("node", "")).strip():
            return None
        try:
            limit_gb = float(raw.get("cache_limit_gb", 0) or 0)
        except (TypeError, ValueError) as exc:
            raise PacsConfigError(f"settings {KEY}.cache_limit_gb must be a number of GB, not "
                                  f"{raw.get('cache_limit_gb')!r}") from exc
        node = NodeStore(settings).get(str(raw["node"]))
        return cls(database, node, int(max(0.0, limit_gb) * 1e9), parent)

    def needs_fetch(self, study_uid: str) -> bool:
        return bool(missing_instances(self.database, study_uid))

    def is_fetching(self, study_uid: str = "") -> bool:
        return self._worker is not None and (not study_uid or study_uid == self._study)

    def first_image_here(self, study_uid: str) -> bool:
        """Whether `study_uid` is being fetched and at least one of its files has been placed: it can open,
        the rest arriving meanwhile."""
        return self.is_fetching(study_uid) and self._placed > 0

    def start(self, study_uid: str) -> None:
        """Fetch the study's missing files in the background: `firstImage` when the first is here, then
        `fetched` or `failed`."""
        if self.is_fetching(study_uid):
            return
        self.cancel()
        database, node = self.database, self.node
        self._study, self._placed = study_uid, 0

        def task(emit, cancel):  # type: ignore[no-untyped-def]
            return fetch_study(database, node, study_uid, lambda done, total, msg: emit((done, total, msg)), cancel)

        self._worker = start_worker(self._runner, task, on_progress=self._relay, on_done=self._done,
                                    on_error=self._failed)

    def cancel(self) -> None:
        old, self._worker = self._worker, None
        if old is not None:  # another study was opened: only its files matter now
            old.cancel()
            old.detach()  # nothing it reported but not yet delivered reaches us (progress included)

    def opened(self, study_uid: str) -> threading.Thread | None:
        """The study is open: most recently used now; the store is trimmed on a background thread (sizing a
        large store walks every file), never removing this study or one in progress. Returns that thread."""
        self.cache.touch(study_uid)
        if not self.cache.limit_bytes or not self._evicting.acquire(blocking=False):
            return None  # no limit, or a trim is already running

        def trim() -> None:
            try:
                keep = studies_in_progress(self.database) | {study_uid}
                self.cache.evict(keep=keep)
            except Exception:  # noqa: BLE001 - database unreachable or a file busy: evict nothing this time
                log.exception("trimming the image cache failed")
            finally:
                self._evicting.release()

        worker = threading.Thread(target=trim, name="cache-trim", daemon=True)
        worker.start()
        return worker

    # -- what the user keeps and removes (worklist menu, Local image cache view) -------------------------
    def pin(self, study_uid: str, by: str = "") -> None:
        """Keep the study on this workstation: never evicted (a row in the database, survives restarts)."""
        self.pins.pin(study_uid, by)

    def unpin(self, study_uid: str) -> None:
        self.pins.unpin(study_uid)

    def pinned_uids(self) -> set[str]:
        return set(self.pins.all())

    def removal_refused(self, study_uid: str, open_uid: str = "") -> str:
        """Why the study's files may not be removed from this workstation now ('' when they may)."""
        if study_uid == open_uid:
            return "it is open in the viewer; open another study first"
        if self.is_fetching(study_uid):
            return "it is being fetched from the archive now"
        pin = self.pins.get(study_uid)
        if pin is not None:
            return f"it is {pin.describe()}; choose \"Allow removal\" first"
        status = report_status(self.database, study_uid)
        if status in IN_PROGRESS:
            return f"its report is {status} (not signed yet): it stays until the report is signed"
        if not self.cache.holds(study_uid):
            return "its images are not on this workstation"
        return ""

    def _relay(self, item: object) -> None:
        done, total, msg = item  # type: ignore[misc]
        first = self._placed == 0 and int(done) > 0
        self._placed = int(done)
        if first:
            self.firstImage.emit(self._study)
        self.progress.emit(self._study, int(done), int(total), str(msg))

    def _done(self, result: object) -> None:
        self._worker = None
        assert isinstance(result, FetchResult)
        if result.refused or not result.complete and result.expected:
            self.failed.emit(result.study_uid, result.message)
        else:
            self.fetched.emit(result.study_uid, result.message)

    def _failed(self, message: str) -> None:
        self._worker = None
        self.failed.emit(self._study, message)
