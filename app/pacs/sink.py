"""Where retrieved and received instances go: the importer's network entry point, nothing else.

C-GET, C-MOVE (via the Storage SCP), WADO-RS and pushes all end in `ImportSink`, so duplicates,
conflicting copies and bad instances are handled exactly as for files. Instances that arrive as bytes
(streamed to staging by `app.pacs.receive`) are committed through a `Committer` per association, in
batches where the protocol allows (`BatchingImporter`); decoded datasets take `__call__`.
`local_sop_uids` tells a retrieve what is already here, as files on this workstation's disk (resume after a
cancel or a dropped connection; a study evicted from the local cache is fetched again and its files put back).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable

from pydicom.dataset import Dataset
from sqlalchemy import select

from app.db.database import Database
from app.db.models import Instance, Series, Study
from app.importer import DatasetOutcome, ImportService
from app.importer.service import Committer, Incoming
from app.importer.store import StagedFile


def local_sop_uids(database: Database, study_uid: str) -> set[str]:
    """SOP Instance UIDs of `study_uid` in the database whose file is on this workstation's disk (a row
    whose file was evicted from the local cache, app.archive.cache, does not count: it must be fetched)."""
    with database.session() as session:
        rows = session.execute(
            select(Instance.sop_instance_uid, Instance.file_path)
            .join(Series, Instance.series_db_id == Series.id)
            .join(Study, Series.study_db_id == Study.id)
            .where(Study.study_uid == study_uid)
        ).all()
    return {uid for uid, path in rows if path and database.store_path(path).is_file()}


class ImportSink:
    """Imports what peers send and counts outcomes; listeners see every outcome.

    Shared by all association threads of a Storage SCP and by retrieve jobs, hence the lock around
    counters and listener lists (the importer itself is thread-safe).
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self.service = ImportService(database)
        self.counts: Counter[str] = Counter()
        self._listeners: list[Callable[[DatasetOutcome], None]] = []
        self._lock = threading.Lock()

    @property
    def store(self):  # type: ignore[no-untyped-def] - ManagedStore
        return self.service.store

    def committer(self) -> Committer:
        """A committer for one association or retrieve (its hierarchy cache lives as long as it does)."""
        return Committer(self.database, self.service.store)

    def __call__(self, ds: Dataset) -> DatasetOutcome:
        return self.notify(self.service.import_dataset(ds))

    def examine(self, staged: StagedFile, source: str) -> Incoming | DatasetOutcome:
        """Validate bytes that arrived; a refusal is counted and reported to listeners at once."""
        result = self.service.examine_staged(staged, source)
        if isinstance(result, DatasetOutcome):
            self.notify(result)
        return result

    def commit(self, committer: Committer, items: list[Incoming]) -> list[DatasetOutcome]:
        return [self.notify(o) for o in committer.commit(items)]

    def notify(self, outcome: DatasetOutcome) -> DatasetOutcome:
        with self._lock:
            self.counts[outcome.status] += 1
            listeners = list(self._listeners)
        for fn in listeners:
            fn(outcome)
        return outcome

    def add_listener(self, fn: Callable[[DatasetOutcome], None]) -> None:
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[DatasetOutcome], None]) -> None:
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)


class BatchingImporter:
    """Commits staged instances on a helper thread in batches (one short transaction per `batch` items
    or per `max_delay` seconds), so receiving the next C-GET instance overlaps with storing earlier ones
    and the database sees a few transactions instead of one per instance. `put` blocks when `depth`
    instances wait (back-pressure reaches the PACS through the delayed C-STORE response); `close` waits
    until everything queued is committed."""

    _STOP = object()

    def __init__(self, sink: ImportSink, on_outcome: Callable[[DatasetOutcome], None], *, batch: int = 64,
                 max_delay: float = 0.25, depth: int = 256) -> None:
        self.sink = sink
        self.on_outcome = on_outcome
        self.batch = max(1, batch)
        self.max_delay = max_delay
        self.committer = sink.committer()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._thread = threading.Thread(target=self._run, name="pacs-import", daemon=True)
        self._thread.start()

    def put_staged(self, staged: StagedFile, source: str) -> None:
        self._queue.put((staged, source))

    def put(self, ds: Dataset) -> None:
        """A decoded dataset (WADO-RS): staged here, committed with the rest."""
        self._queue.put(ds)

    def _run(self) -> None:
        pending: list[Incoming] = []
        deadline = 0.0
        while True:
            timeout = max(0.0, deadline - time.monotonic()) if pending else None
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is self._STOP:
                self._flush(pending)
                return
            if item is not None:
                incoming = self._examine(item)
                if incoming is not None:
                    if not pending:
                        deadline = time.monotonic() + self.max_delay
                    pending.append(incoming)
            if pending and (len(pending) >= self.batch or time.monotonic() >= deadline):
                self._flush(pending)
                pending = []

    def _examine(self, item: object) -> Incoming | None:
        try:
            if isinstance(item, Dataset):
                staged = self.sink.service.store.stage_dataset(item)
                source = "WADO-RS"
            else:
                staged, source = item  # type: ignore[misc]
            result = self.sink.examine(staged, source)
        except Exception as exc:  # noqa: BLE001 - e.g. the disk is full: a failed instance, never a crash
            uid = str(getattr(item, "SOPInstanceUID", "") or "")
            self.on_outcome(self.sink.notify(DatasetOutcome("failed", uid, "", f"import failed: {exc}", True)))
            return None
        if isinstance(result, DatasetOutcome):
            self.on_outcome(result)
            return None
        return result

    def _flush(self, pending: list[Incoming]) -> None:
        if not pending:
            return
        try:
            outcomes = self.sink.commit(self.committer, pending)
        except Exception as exc:  # noqa: BLE001 - the committer reports per item; this is a last resort
            outcomes = [self.sink.notify(DatasetOutcome("failed", i.header.sop_instance_uid, i.header.study_uid,
                                                        f"import failed: {exc}", True)) for i in pending]
        for outcome in outcomes:
            self.on_outcome(outcome)

    def close(self) -> None:
        self._queue.put(self._STOP)
        self._thread.join()

