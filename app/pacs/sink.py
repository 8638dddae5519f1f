"""Where retrieved and received instances go: the importer's network entry point, nothing else.

C-GET, C-MOVE (via the Storage SCP), WADO-RS and pushes all end in `ImportSink`, so duplicates and bad
instances are handled exactly as for files. `local_sop_uids` tells a retrieve what is already here
(resume after a cancel or a dropped connection).
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable

from pydicom.dataset import Dataset
from sqlalchemy import select

from app.db.database import Database
from app.db.models import Instance, Series, Study
from app.importer import DatasetOutcome, ImportService


def local_sop_uids(database: Database, study_uid: str) -> set[str]:
    """SOP Instance UIDs of `study_uid` already in the database."""
    with database.session() as session:
        rows = session.scalars(
            select(Instance.sop_instance_uid)
            .join(Series, Instance.series_db_id == Series.id)
            .join(Study, Series.study_db_id == Study.id)
            .where(Study.study_uid == study_uid)
        )
        return set(rows)


class ImportSink:
    """Callable that imports one dataset and counts outcomes; listeners see every outcome.

    Shared by all association threads of a Storage SCP and by retrieve jobs, hence the lock around
    counters and listener lists (the importer itself is thread-safe).
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self.service = ImportService(database)
        self.counts: Counter[str] = Counter()
        self._listeners: list[Callable[[DatasetOutcome], None]] = []
        self._lock = threading.Lock()

    def __call__(self, ds: Dataset) -> DatasetOutcome:
        outcome = self.service.import_dataset(ds)
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


class ImportQueue:
    """Imports on a helper thread, `depth` instances behind the network, so receiving the next C-GET
    instance overlaps with storing the previous one. `put` blocks when the queue is full (back-pressure
    reaches the PACS through the delayed C-STORE response); `close` waits until everything queued is in.
    """

    _STOP = object()

    def __init__(self, sink: ImportSink, on_outcome: Callable[[DatasetOutcome], None], depth: int = 32) -> None:
        self.sink = sink
        self.on_outcome = on_outcome
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._thread = threading.Thread(target=self._run, name="pacs-import", daemon=True)
        self._thread.start()

    def put(self, ds: Dataset) -> None:
        self._queue.put(ds)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._STOP:
                return
            try:
                outcome = self.sink(item)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - e.g. the database went away: a failed instance
                uid = str(getattr(item, "SOPInstanceUID", "") or "")
                study = str(getattr(item, "StudyInstanceUID", "") or "")
                outcome = DatasetOutcome("failed", uid, study, f"import failed: {exc}")
            self.on_outcome(outcome)

    def close(self) -> None:
        self._queue.put(self._STOP)
        self._thread.join()
