"""What the first study opened would otherwise pay for on the GUI thread, done once while nobody waits.

Profiled on the 2-core reading-room machine under load (benchmarks/ui_stalls.py --profile open): the first
open after start-up spent ~100 ms importing modules it imports lazily and ~90 ms letting SQLAlchemy compile the
study's queries (cached per engine afterwards). `warm_study_open` runs both on a worker thread at start-up;
a study opened before it has finished simply pays the rest itself.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.db.database import Database

log = logging.getLogger(__name__)


def warm_study_open(database: Database) -> None:
    """Start the access-audit writer thread, import what opening a study imports and run its GUI-thread
    queries once on any stored study (read-only; an empty database or an error only means nothing was warmed)."""
    try:
        from app.access_audit_writer import WRITER

        WRITER.start()  # the open's audit entries are written by this thread: started here, not on the GUI thread
        import app.priors.documents  # noqa: F401 - the study's SR/PDF reports, read when it opens
        import app.study_actions  # noqa: F401 - hanging protocol inputs, prior lookup
        import app.widgets.prior_reports  # noqa: F401 - the reports that came with the study (Qt classes only)
        from app.db.interest_store import DbInterestStore
        from app.db.measurement_store import DbMeasurementStore
        from app.db.models import Study
        from app.db.queries import StudyNotFound, study_ref

        with database.session() as session:
            uid = session.scalar(select(Study.study_uid).limit(1))
            if uid is None:
                return
            try:
                ref = study_ref(session, uid)
            except StudyNotFound:  # deleted meanwhile
                return
        DbInterestStore(database).load(ref.study_uid)
        DbMeasurementStore(database).load(ref.study_uid)  # any key: the query is what is compiled
    except Exception as exc:  # noqa: BLE001 - warming is an optimisation; the open itself reports problems
        log.info("study-open warm-up skipped: %s", exc)
