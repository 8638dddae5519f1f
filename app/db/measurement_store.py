"""The viewer's MeasurementStore backed by the study database, so measurements survive a restart."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from app.db.base import utcnow
from app.db.database import Database
from app.db.models import Measurement

_COLUMNS = ("kind", "geometry", "result")


class DbMeasurementStore:
    """Implements viewer.measure.store.MeasurementStore: one row per measurement, per SOP instance.

    `save` replaces the image's list. A measurement carrying an "id" keeps its row (and created time)
    across saves; the keys kind/geometry/result get columns, everything else is kept in `extra`.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def load(self, sop_instance_uid: str) -> list[dict[str, Any]]:
        with self.database.session() as session:
            rows = session.scalars(
                select(Measurement)
                .where(Measurement.sop_instance_uid == sop_instance_uid)
                .order_by(Measurement.position, Measurement.id)
            ).all()
            return [_to_dict(row) for row in rows]

    def save(self, sop_instance_uid: str, measurements: list[dict[str, Any]]) -> None:
        if not sop_instance_uid:
            raise ValueError("measurements need the SOP Instance UID of their image")

        def work(session) -> None:  # type: ignore[no-untyped-def] - may run again (busy)
            old = {
                _row_key(row): row
                for row in session.scalars(
                    select(Measurement).where(Measurement.sop_instance_uid == sop_instance_uid)
                )
            }
            keep: set[int] = set()
            for position, data in enumerate(measurements):
                data = dict(data)
                kind = data.pop("kind", "") or ""
                geometry = data.pop("geometry", None)
                result = data.pop("result", None)
                ident = data.get("id")
                row = old.get(str(ident)) if ident is not None else None
                if row is None:
                    row = Measurement(sop_instance_uid=sop_instance_uid)
                    session.add(row)
                elif (row.kind, row.geometry, row.result, row.extra, row.position) != (
                    str(kind), geometry, result, data, position
                ):
                    row.updated_at = utcnow()
                row.position, row.kind, row.geometry, row.result, row.extra = (
                    position, str(kind), geometry, result, data
                )
                session.flush()
                keep.add(row.id)
            session.execute(
                delete(Measurement).where(
                    Measurement.sop_instance_uid == sop_instance_uid, Measurement.id.not_in(keep)
                )
            )

        # begun holding the write lock: a commit by another writer (the access-audit thread, an import) between
        # this read and the writes can no longer fail the save with "database is locked"; retried while busy
        self.database.run_write(work)


def _row_key(row: Measurement) -> str:
    ident = (row.extra or {}).get("id")
    return str(ident) if ident is not None else f"row:{row.id}"


def _to_dict(row: Measurement) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if row.kind:
        out["kind"] = row.kind
    if row.geometry is not None:
        out["geometry"] = row.geometry
    if row.result is not None:
        out["result"] = row.result
    out.update(row.extra or {})
    return out
