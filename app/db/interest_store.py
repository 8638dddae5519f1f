"""The viewer's InterestStore backed by the study database: "Of Interest" flags survive a restart and are sent
with the signed report as a KOS (app.dicom_objects.report_objects.interest_kos)."""

from __future__ import annotations

from sqlalchemy import delete, select

from app.db.database import Database
from app.db.models import InterestImage
from viewer.presentation.interest import InterestRef


class DbInterestStore:
    """Implements viewer.presentation.interest.InterestStore: one row per flagged image of a study."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def load(self, study_uid: str) -> list[InterestRef]:
        with self.database.session() as session:
            rows = session.scalars(select(InterestImage).where(InterestImage.study_uid == study_uid)
                                   .order_by(InterestImage.flagged_at, InterestImage.id)).all()
            return [InterestRef(r.study_uid, r.series_uid, r.sop_class_uid, r.sop_instance_uid) for r in rows]

    def set(self, ref: InterestRef, on: bool) -> None:
        def work(session) -> None:  # type: ignore[no-untyped-def] - may run again while the database is busy
            existing = session.scalar(select(InterestImage).where(
                InterestImage.study_uid == ref.study_uid, InterestImage.sop_instance_uid == ref.sop_instance_uid))
            if on and existing is None:
                session.add(InterestImage(study_uid=ref.study_uid, series_uid=ref.series_uid,
                                          sop_class_uid=ref.sop_class_uid, sop_instance_uid=ref.sop_instance_uid))
            elif not on:
                session.execute(delete(InterestImage).where(InterestImage.study_uid == ref.study_uid,
                                                            InterestImage.sop_instance_uid == ref.sop_instance_uid))

        # begun holding the write lock, as report writes are: another writer's commit between the read and the
        # write (the access-audit thread) cannot fail the flag with "database is locked"; retried while busy
        self.database.run_write(work)
