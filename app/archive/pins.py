"""Pins of this workstation's local image cache, in the shared database (one row per workstation and study).

A pinned study is never evicted when the cache is trimmed to its limit ("Keep on this workstation" in the
worklist); "Allow removal" deletes the row. The workstation is named by its host name, as report claims are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.db.database import Database
from app.db.models import CachePin
from app.reports.claims import this_workstation


@dataclass(frozen=True)
class Pin:
    study_uid: str
    pinned_by: str
    pinned_at: datetime

    def describe(self) -> str:
        return f"kept on this workstation by {self.pinned_by or 'the workstation'} since " \
               f"{self.pinned_at:%Y-%m-%d %H:%M}"


class CachePins:
    """This workstation's pins (another workstation on the same database has its own)."""

    def __init__(self, database: Database, workstation: str | None = None) -> None:
        self.database = database
        self.workstation = workstation or this_workstation()

    def pin(self, study_uid: str, by: str = "") -> None:
        if self.get(study_uid) is not None:
            return

        def work(session) -> None:  # type: ignore[no-untyped-def]
            session.add(CachePin(workstation=self.workstation, study_uid=study_uid, pinned_by=by))

        try:
            self.database.run_write(work)
        except IntegrityError:  # pinned meanwhile (a second window, a double click): pinned is pinned
            pass

    def unpin(self, study_uid: str) -> None:
        self.database.run_write(lambda session: session.execute(
            delete(CachePin).where(CachePin.workstation == self.workstation, CachePin.study_uid == study_uid)))

    def get(self, study_uid: str) -> Pin | None:
        return self.all().get(study_uid) if study_uid else None

    def all(self) -> dict[str, Pin]:
        with self.database.session() as session:
            rows = session.execute(select(CachePin.study_uid, CachePin.pinned_by, CachePin.pinned_at)
                                   .where(CachePin.workstation == self.workstation)).all()
        return {uid: Pin(uid, by, at) for uid, by, at in rows}
