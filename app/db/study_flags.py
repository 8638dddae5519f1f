"""Setting, clearing and reading the reasons a study needs attention (`StudyFlag` rows).

The importer flags truncated objects and conflicting copies as it stores them, an import cut off by a
crash is flagged when the next import notices it, and a retrieval flags what it could not fetch. The
worklist reads all flags of the listed studies with one query.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import FLAG_KINDS, Study, StudyFlag

LABELS = {
    "incomplete_objects": "incomplete objects",
    "conflicting_copies": "conflicting copies",
    "import_interrupted": "import interrupted",
    "retrieve_partial": "retrieve incomplete",
}


def set_flag(session: Session, study_db_id: int, kind: str, detail: str) -> None:
    """Create or replace the study's flag of this kind (one statement, safe under concurrent writers)."""
    if kind not in FLAG_KINDS:
        raise ValueError(f"unknown study flag {kind!r}")
    values = {"study_db_id": study_db_id, "kind": kind, "detail": detail[:2000], "updated_at": utcnow()}
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = sqlite_insert if dialect == "sqlite" else pg_insert
        stmt = insert(StudyFlag).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["study_db_id", "kind"], set_={"detail": values["detail"], "updated_at": values["updated_at"]}
        )
        session.execute(stmt)
        return
    existing = session.scalar(select(StudyFlag).where(StudyFlag.study_db_id == study_db_id, StudyFlag.kind == kind))
    if existing is None:
        session.add(StudyFlag(**values))
    else:
        existing.detail = values["detail"]


def clear_flag(session: Session, study_db_id: int, kind: str) -> None:
    session.execute(delete(StudyFlag).where(StudyFlag.study_db_id == study_db_id, StudyFlag.kind == kind))


def set_flag_by_uid(session: Session, study_uid: str, kind: str, detail: str) -> bool:
    study_id = session.scalar(select(Study.id).where(Study.study_uid == study_uid))
    if study_id is None:
        return False
    set_flag(session, study_id, kind, detail)
    return True


def clear_flag_by_uid(session: Session, study_uid: str, kind: str) -> None:
    study_id = session.scalar(select(Study.id).where(Study.study_uid == study_uid))
    if study_id is not None:
        clear_flag(session, study_id, kind)


def flags_by_study_uid(session: Session, study_uids: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """{study uid: [(kind, detail), ...]} for the studies that have flags (one query)."""
    uids = list(dict.fromkeys(study_uids))
    out: dict[str, list[tuple[str, str]]] = {}
    for start in range(0, len(uids), 500):
        rows = session.execute(
            select(Study.study_uid, StudyFlag.kind, StudyFlag.detail)
            .join(StudyFlag, StudyFlag.study_db_id == Study.id)
            .where(Study.study_uid.in_(uids[start : start + 500]))
            .order_by(StudyFlag.kind)
        )
        for uid, kind, detail in rows:
            out.setdefault(uid, []).append((kind, detail))
    return out


def attention_text(flags: list[tuple[str, str]]) -> str:
    """'incomplete objects; conflicting copies' - the short text the worklist shows."""
    return "; ".join(LABELS.get(kind, kind) for kind, _ in flags)
