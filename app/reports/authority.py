"""Who may sign, decided from stored facts rather than from a login session.

At signing time the signer's row is re-read from the database (a radiologist demoted during a session can
no longer sign). At verification time the signer's authority is rebuilt from the audit log, which the keyed
checkpoints protect: the role and the registered certificate in force at the signing time, from the
`user_add`, `user_change` and `cert_create` entries written when they changed.

Signing roles: "radiologist", plus the roles a site lists in the `signing_roles` setting.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.reports.models import ROLES, AuditEntry, User

DEFAULT_SIGNING_ROLES: frozenset[str] = frozenset({"radiologist"})


class RoleError(PermissionError):
    """The user's role does not allow this action."""


def signing_roles(settings=None) -> frozenset[str]:
    """The default roles plus the `signing_roles` setting (of `settings`, else the settings in use)."""
    from app.settings import current_settings

    extra = (settings or current_settings()).get("signing_roles", []) or []
    if isinstance(extra, str):
        extra = [extra]
    return DEFAULT_SIGNING_ROLES | {r for r in extra if r in ROLES and r != "admin"}


def require_signing_authority(s: Session, user_id: int) -> User:
    """The signer's current row, if it may sign now; RoleError otherwise."""
    user = s.get(User, user_id, populate_existing=True)
    if user is None or not user.active:
        raise RoleError("the account no longer exists or is disabled; it cannot sign")
    if user.role not in signing_roles():
        raise RoleError(f"{user.username} is now a {user.role}; only {', '.join(sorted(signing_roles()))} "
                        "may sign reports")
    return user


def _when(text: str) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def sign_entry_for(s: Session, artefact_sha256: str) -> AuditEntry | None:
    """The `sign` audit entry that recorded a document with this SHA-256 (documents are stored, and exported,
    byte for byte as signed)."""
    return s.scalars(select(AuditEntry).where(AuditEntry.action == "sign",
                                              AuditEntry.details.contains(artefact_sha256))
                     .order_by(AuditEntry.seq)).first()


def authority_at(s: Session, username: str, cert_sha256: str, signed_at: str,
                 before_seq: int | None = None) -> list[str]:
    """Problems with `username` signing with certificate `cert_sha256` at `signed_at` (empty: authorised).

    Replays the account's audit entries up to the signing: those before the `sign` entry `before_seq` when
    it is known (exact order), else those up to the signing time (to the second, as signing times are
    recorded): the role then, whether the account was active, and which certificate was registered."""
    at = _when(signed_at)
    if at is None:
        return [f"signing time {signed_at!r} is not a valid time"]
    role, active, cert, seen = None, True, "", False
    entries = s.scalars(select(AuditEntry).where(AuditEntry.object_type == "user", AuditEntry.object_id == username,
                                                 AuditEntry.action.in_(("user_add", "user_change", "cert_create",
                                                                        "cert_revoke")))
                        .order_by(AuditEntry.seq))
    for e in entries:
        when = _when(e.at)
        if before_seq is not None:
            if e.seq >= before_seq:
                break
        elif when is None or when.replace(microsecond=0) > at:
            break
        try:
            details = json.loads(e.details)
        except ValueError:
            return [f"audit entry seq={e.seq} about {username} cannot be read"]
        if not isinstance(details, dict):
            continue
        seen = True
        if e.action in ("user_add", "user_change") and "role" in details:
            role = details["role"]
        if e.action == "user_change" and "active" in details:
            active = bool(details["active"])
        if e.action == "cert_create" and details.get("cert_sha256"):
            cert = str(details["cert_sha256"])
        if e.action == "cert_revoke" and details.get("cert_sha256") == cert:
            cert = ""
    if not seen:
        return [f"the audit log has no record of account {username!r} before the signing time"]
    problems = []
    if role not in signing_roles():
        problems.append(f"{username} was a {role or 'user without a role'} at the signing time, without "
                        "signing authority")
    if not active:
        problems.append(f"{username}'s account was disabled at the signing time")
    if cert != cert_sha256:
        problems.append(f"the signing certificate was not the one registered for {username} at the signing time")
    return problems
