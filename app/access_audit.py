"""Who looked at which patient's data, and when: access events in the audit log the reports use.

Every access to patient data - a study opened, a series of images shown, a PACS query and what it
returned, a retrieval, an export - becomes one entry in the hash-chained audit log (`app.reports.audit`)
with the user, the patient (ID and name), the study and the time, so a privacy officer reads report
events and data access in one place (`radstation audit verify` covers both).

The acting user is process-wide: the workstation sets it at login and logout (`set_actor`), command-line
tools act as the operating-system user ("os:<login>"). Recording never stops the user's work: a failure
to write the entry is logged as an error.

Entries are written by one thread in the order they were recorded (app/access_audit_writer.py). The
workstation's hot paths (a study opened, images shown) pass `wait=False` and go on at once; everything
else waits for its entry as before. `flush()` waits for entries still on their way (window close, tests).
"""

from __future__ import annotations

import getpass
import logging
import threading
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.access_audit_writer import WRITER
from app.db.database import Database
from app.db.models import Patient, Study
from app.reports import audit

log = logging.getLogger(__name__)

_lock = threading.Lock()
_actor: dict[str, Any] = {"name": None, "workstation": False}
MAX_LISTED = 50  # patient IDs listed per query entry


def _os_user() -> str:
    try:
        return f"os:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name (some containers)
        return "os:unknown"


def set_actor(username: str | None) -> None:
    """The workstation's user from now on (None: nobody is logged in)."""
    with _lock:
        _actor["name"] = username
        _actor["workstation"] = True


def actor() -> str:
    """The logged-in user; the OS user for command-line tools, marked when the workstation has nobody."""
    with _lock:
        name, workstation = _actor["name"], _actor["workstation"]
    if name:
        return str(name)
    return f"{_os_user()} (not logged in)" if workstation else _os_user()


def patient_of(session: Session, study_uid: str) -> dict[str, str]:
    """The patient's ID and name for a study in the database ({} when the study is not there)."""
    row = session.execute(
        select(Patient.patient_id, Patient.name).join(Study, Study.patient_db_id == Patient.id)
        .where(Study.study_uid == study_uid)
    ).first()
    return {"patient_id": row[0], "patient_name": row[1]} if row else {}


def record(database: Database, action: str, object_type: str, object_id: str, details: dict[str, Any] | None = None,
           *, study_uid: str = "", wait: bool = True) -> None:
    """Append one access entry (its own short transaction, after every entry recorded before it); never raises.
    `wait=False` returns before it is written (the user at the time of the call is the one recorded, and the time
    of the call as `accessed_at`: the entry's own `at` is when it reached the log, later after retries)."""
    user = actor()
    accessed_at = audit.now_iso()

    def work(session: Session) -> None:
        info = dict(details or {})
        info.setdefault("accessed_at", accessed_at)
        if study_uid:
            info.setdefault("study_uid", study_uid)
            info.update({k: v for k, v in patient_of(session, study_uid).items() if k not in info})
        audit.append(session, action, user, object_type, object_id, info)

    WRITER.submit(lambda: database.run_write(work),
                  f"{action} of {object_type} {object_id} by {user} ({details or {}}, study {study_uid or '-'})",
                  wait=wait)


def flush(timeout: float | None = 30.0) -> bool:
    """Wait until every entry recorded so far is written; False when some are still pending after `timeout`."""
    return WRITER.flush(timeout)


def study_opened(database: Database, study_uid: str, *, wait: bool = True) -> None:
    record(database, "view", "study", study_uid, {"access": "study opened"}, study_uid=study_uid, wait=wait)


def images_viewed(database: Database, study_uid: str, series_uid: str, modality: str = "", *,
                  wait: bool = True) -> None:
    record(database, "view", "series", series_uid, {"access": "images shown", "modality": modality},
           study_uid=study_uid, wait=wait)


def pacs_query(database: Database, node: str, criteria: dict[str, Any], patients: Iterable[tuple[str, str]],
               results: int) -> None:
    """A search on a PACS: what was asked and whose studies came back."""
    listed = list(dict.fromkeys(patients))
    record(database, "query", "pacs_query", node, {
        "criteria": {k: v for k, v in criteria.items() if v not in ("", None)},
        "results": results,
        "patients": [{"patient_id": pid, "patient_name": name} for pid, name in listed[:MAX_LISTED]],
        "patients_not_listed": max(0, len(listed) - MAX_LISTED),
    })


def retrieved(database: Database, node: str, study_uid: str, state: str, instances: int) -> None:
    record(database, "retrieve", "study", study_uid, {"from": node, "state": state, "instances": instances},
           study_uid=study_uid)


def exported(database: Database, study_uid: str, what: str, target: str) -> None:
    record(database, "export", "study", study_uid, {"what": what, "target": target}, study_uid=study_uid)
