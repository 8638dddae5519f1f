"""Append-only audit log, chained by SHA-256 and keyed, so that a deleted, altered, reordered or rewritten
entry is detected.

Each entry hashes the previous entry's hash together with its own canonical content (seq, time, user,
action, object, details). `AuditHead` keeps the count and newest hash, so cutting entries off the end
shows too. Every entry and the head also carry a keyed checkpoint, HMAC-SHA256 under a key kept outside
the database (app/reports/audit_key.py): an insider who rewrites entries and recomputes the whole chain
still cannot make the checkpoints match, and `verify_chain` names the first checkpoint that breaks.
Entries are appended inside the caller's transaction: the audit record and the change it describes commit
together or not at all.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from app.reports import audit_key, audit_watermark
from app.reports.canonical import canonical_bytes, sha256_hex
from app.reports.models import AuditEntry, AuditHead

GENESIS_HASH = "0" * 64
ACTIONS: frozenset[str] = frozenset({
    "view", "draft", "edit", "accept_ai", "preliminary", "sign", "amend", "export", "send", "send_failed",
    "verify", "login", "login_failed", "lockout", "logout", "user_add", "user_change", "passwd", "cert_create",
    "cert_revoke",
    "claim",
    "query", "retrieve", "print", "delete",  # patient-data access (app/access_audit.py); "view"/"export" serve it too
    "ai_scope_override",  # AI output for an input outside the engine's scope, at the user's explicit request
})


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def entry_content(seq: int, at: str, username: str, action: str, object_type: str, object_id: str,
                  details: str) -> dict[str, Any]:
    return {"seq": seq, "at": at, "user": username, "action": action, "object_type": object_type,
            "object_id": object_id, "details": json.loads(details)}


def chain_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return sha256_hex(prev_hash.encode("ascii") + canonical_bytes(content))


def append(session: Session, action: str, username: str = "", object_type: str = "", object_id: Any = "",
           details: dict[str, Any] | None = None) -> AuditEntry:
    """Add one entry (flushed, committed with the caller's transaction)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    # Take the write lock before reading the head (a no-op UPDATE on SQLite, a row lock elsewhere), so two
    # writers in different processes can never both extend the same link.
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(count=AuditHead.count)
                    .execution_options(synchronize_session=False))
    head = session.get(AuditHead, 1, populate_existing=True, with_for_update=True)
    if head is None:  # databases created before the head row was seeded by the migration
        head = AuditHead(id=1, count=0, last_hash=GENESIS_HASH)
        session.add(head)
    key = _key_for_append(session, head)
    seq = head.count + 1
    at = now_iso()
    details_text = canonical_bytes(details or {}).decode("utf-8")
    content = entry_content(seq, at, username, action, object_type, str(object_id), details_text)
    entry = AuditEntry(seq=seq, at=at, username=username, action=action, object_type=object_type,
                       object_id=str(object_id), details=details_text, prev_hash=head.last_hash,
                       entry_hash=chain_hash(head.last_hash, content))
    entry.mac = audit_key.entry_mac(key, seq, entry.entry_hash)
    session.add(entry)
    head.count = seq
    head.last_hash = entry.entry_hash
    head.mac = audit_key.head_mac(key, seq, entry.entry_hash)
    session.flush()
    genesis = entry.entry_hash if seq == 1 else session.scalar(
        select(AuditEntry.entry_hash).order_by(AuditEntry.id).limit(1))
    if genesis and audit_watermark.may_advance(key, genesis, lambda n: _hash_at(session, n)):
        session.info[_SEEN] = (key, genesis, seq, entry.entry_hash)
    return entry


def _hash_at(session: Session, seq: int) -> str | None:
    return session.scalar(select(AuditEntry.entry_hash).where(AuditEntry.seq == seq).order_by(AuditEntry.id)
                          .limit(1))


_SEEN = "radstation_audit_seen"  # Session.info: the newest entry this transaction appended


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    """Only a committed entry moves this workstation's high-water mark (app/reports/audit_watermark.py)."""
    seen = session.info.pop(_SEEN, None)
    if seen is None:
        return
    try:
        audit_watermark.record(*seen)
    except OSError as exc:  # the commit stands; the next one moves the mark
        logging.getLogger(__name__).warning("audit high-water mark not written: %s", exc)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_SEEN, None)


def _key_for_append(session: Session, head: AuditHead) -> bytes:
    """The audit key; a new one only for a log that has never been keyed (else a lost key is an error)."""
    key = audit_key.load_key(create=False)
    if key is not None:
        return key
    if head.mac or session.scalar(select(AuditEntry.id).where(AuditEntry.mac != "").limit(1)) is not None:
        raise audit_key.AuditKeyError(f"the audit key {audit_key.audit_key_path()} is missing but the audit log "
                                      "is keyed with it: restore the key file from backup")
    return audit_key.load_key(create=True)  # type: ignore[return-value]


@dataclass
class AuditVerification:
    count: int = 0
    problems: list[str] = field(default_factory=list)
    keyed: int = 0  # entries whose keyed checkpoint was checked
    first_broken_checkpoint: int | None = None  # seq of the first entry whose checkpoint fails

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            unkeyed = self.count - self.keyed
            extra = f" ({unkeyed} older entries covered by the chain only)" if unkeyed else ""
            return (f"audit log intact: {self.count} entries, chain, head and keyed checkpoints match"
                    f"{extra}")
        head = f"AUDIT LOG TAMPERED ({len(self.problems)} problem(s) in {self.count} entries)"
        if self.first_broken_checkpoint is not None:
            head += f"; first broken keyed checkpoint: entry seq={self.first_broken_checkpoint}"
        shown = self.problems[:20]
        more = [f"... and {len(self.problems) - 20} more"] if len(self.problems) > 20 else []
        return head + ":\n  " + "\n  ".join(shown + more)


def verify_chain(session: Session) -> AuditVerification:
    """Walk the chain in storage order; report every break with the entry it is in."""
    result = AuditVerification()
    prev = GENESIS_HASH
    expected_seq = 1
    try:
        key = audit_key.load_key(create=False)
    except audit_key.AuditKeyError as exc:
        result.problems.append(str(exc))
        key = None
    keyed_started = False
    for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id)):
        result.count += 1
        where = f"entry id={entry.id} seq={entry.seq} ({entry.action} by {entry.username or '-'} at {entry.at})"
        if entry.seq != expected_seq:
            result.problems.append(f"{where}: sequence {entry.seq}, expected {expected_seq} "
                                   "(an entry was deleted, inserted or reordered)")
        if entry.prev_hash != prev:
            result.problems.append(f"{where}: does not link to the previous entry (deleted or reordered)")
        try:
            content = entry_content(entry.seq, entry.at, entry.username, entry.action, entry.object_type,
                                    entry.object_id, entry.details)
            recomputed = chain_hash(entry.prev_hash, content)
        except (ValueError, TypeError) as exc:
            result.problems.append(f"{where}: details cannot be read ({exc}); altered")
            recomputed = ""
        if recomputed != entry.entry_hash:
            result.problems.append(f"{where}: content does not match its hash (altered)")
        if entry.mac:
            keyed_started = True
            if key is not None:
                result.keyed += 1
                if not audit_key.same(audit_key.entry_mac(key, entry.seq, entry.entry_hash), entry.mac):
                    _broken(result, entry.seq, f"{where}: keyed checkpoint does not match (entry rewritten, "
                                               "forged, or the chain before it recomputed)")
        elif keyed_started:
            _broken(result, entry.seq, f"{where}: has no keyed checkpoint although earlier entries do "
                                       "(written outside RadStation)")
        prev = entry.entry_hash
        expected_seq = entry.seq + 1
    head = session.get(AuditHead, 1)
    head_count, head_hash = (head.count, head.last_hash) if head else (0, GENESIS_HASH)
    head_mac = head.mac if head else ""
    if keyed_started and key is None:
        result.problems.append(f"the audit key {audit_key.audit_key_path()} is missing: the keyed checkpoints "
                               "cannot be checked")
    if key is not None and (head_mac or keyed_started) and not audit_key.same(
            audit_key.head_mac(key, head_count, head_hash), head_mac):
        result.problems.append("the head's keyed checkpoint does not match its count and hash (head rewritten)")
    if head_count != result.count or head_hash != prev:
        result.problems.append(f"head records {head_count} entries ending in {head_hash[:12]}…, the log has "
                               f"{result.count} ending in {prev[:12]}… (entries removed from the end or added "
                               "outside the log)")
    if key is not None and keyed_started:
        _check_watermark(session, result, key, prev)
    return result


def _check_watermark(session: Session, result: AuditVerification, key: bytes, last_hash: str) -> None:
    """A log rolled back behind what this workstation saw committed (tail cut, older head put back)."""
    genesis = session.scalar(select(AuditEntry.entry_hash).order_by(AuditEntry.id).limit(1))
    if not genesis:
        return
    last_seq = session.scalar(select(AuditEntry.seq).order_by(AuditEntry.id.desc()).limit(1)) or 0

    problem = audit_watermark.check(key, genesis, lambda n: _hash_at(session, n), last_seq)
    if problem is None:
        return
    seq, text = problem
    if seq is None:
        result.problems.append(text)
    else:
        _broken(result, seq, text)


def _broken(result: AuditVerification, seq: int, problem: str) -> None:
    if result.first_broken_checkpoint is None:
        result.first_broken_checkpoint = seq
    result.problems.append(problem)
