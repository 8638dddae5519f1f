"""Local user accounts: roles, argon2id passwords, lock-out after repeated failures, session timeout.

Roles: radiologist (may sign), resident (may prepare: draft and mark preliminary), admin (manages users).
Account administration (adding users, changing roles, unlocking, registering signing certificates) needs
an authenticated admin whose role is read from the database at that moment; the only exception is the
first account of an empty database (bootstrap). A workstation without any admin account lets a signing
user register their own certificate (a single-user workstation with a self-signed key).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from sqlalchemy import func, select

from app.reports import audit
from app.reports.authority import RoleError, signing_roles
from app.reports.keys import KeyError_, certificate_fingerprint, default_p12_path, rewrap_p12
from app.reports.models import ROLES, User
from app.reports.passwords import DEFAULT_HASHER, check_policy, hash_password, needs_rehash, verify_password


class AuthError(PermissionError):
    """Wrong user name or password (deliberately not saying which)."""


class AccountLockedError(AuthError):
    def __init__(self, username: str, until: dt.datetime) -> None:
        super().__init__(f"account {username!r} is locked after repeated failed logins until "
                         f"{until.astimezone().strftime('%H:%M:%S')}")
        self.until = until


class SessionExpiredError(PermissionError):
    """The session was idle longer than the timeout; log in again."""


class UserError(ValueError):
    """Bad input for a user account (unknown role, duplicate name...)."""


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass
class AuthSession:
    """A logged-in user; `ensure_active` is called before every privileged action."""

    user_id: int
    username: str
    display_name: str
    role: str
    timeout: dt.timedelta
    last_activity: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def can_sign(self) -> bool:
        """What the session believed at log-in (for the UI only: signing re-reads the role)."""
        return self.role in signing_roles()

    @property
    def can_manage_users(self) -> bool:
        return self.role == "admin"

    def is_expired(self, now: dt.datetime | None = None) -> bool:
        now = now or dt.datetime.now(dt.UTC)
        return now - self.last_activity > self.timeout

    def ensure_active(self, now: dt.datetime | None = None) -> None:
        now = now or dt.datetime.now(dt.UTC)
        if self.is_expired(now):
            raise SessionExpiredError(f"session of {self.username} timed out after {self.timeout}; log in again")
        self.last_activity = now


class UserService:
    def __init__(self, database, *, hasher: PasswordHasher = DEFAULT_HASHER, max_failures: int = 5,
                 lockout: dt.timedelta = dt.timedelta(minutes=15),
                 session_timeout: dt.timedelta = dt.timedelta(minutes=30),
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.db = database
        self.hasher = hasher
        self.max_failures = max_failures
        self.lockout = lockout
        self.session_timeout = session_timeout
        self.clock = clock

    # -- accounts -----------------------------------------------------------------------------------
    def add_user(self, username: str, password: str, role: str, display_name: str = "",
                 actor: AuthSession | None = None) -> int:
        """Create an account. `actor` must be an authenticated admin, except for the first account of an
        empty database (bootstrap, actor=None)."""
        username = username.strip()
        if not username or not username.replace("_", "").replace(".", "").replace("-", "").isalnum():
            raise UserError("user name must be letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}")
        check_policy(password)
        password_hash = hash_password(password, self.hasher)  # the slow hash before the write lock is taken
        with self.db.write_session() as s:
            if actor is None:
                if s.scalar(select(func.count(User.id))):
                    raise RoleError("accounts exist already: an authenticated admin must add users")
            else:
                self._require_admin(s, actor, "add users")
            if s.scalar(select(User).where(User.username == username)) is not None:
                raise UserError(f"user {username!r} already exists")
            user = User(username=username, display_name=display_name or username, role=role,
                        password_hash=password_hash)
            s.add(user)
            s.flush()
            audit.append(s, "user_add", actor.username if actor else "bootstrap", "user", username,
                         {"role": role})
            return user.id

    def list_users(self) -> list[dict]:
        with self.db.session() as s:
            return [{"username": u.username, "display_name": u.display_name, "role": u.role,
                     "active": u.active, "locked_until": _aware(u.locked_until), "has_certificate": bool(u.cert_der)}
                    for u in s.scalars(select(User).order_by(User.username))]

    def count(self) -> int:
        with self.db.session() as s:
            return s.scalar(select(func.count(User.id))) or 0

    def set_role(self, username: str, role: str, actor: AuthSession) -> None:
        """Change a role (admin only). A user who loses signing authority keeps no registered certificate."""
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}")
        with self.db.write_session() as s:
            self._require_admin(s, actor, "change roles")
            user = self._get(s, username)
            if user.id == actor.user_id and role != "admin" and self._admins(s) == 1:
                raise UserError("the last admin cannot give up the admin role")
            user.role = role
            audit.append(s, "user_change", actor.username, "user", username, {"role": role})

    def unlock(self, username: str, actor: AuthSession) -> None:
        with self.db.write_session() as s:
            self._require_admin(s, actor, "unlock accounts")
            user = self._get(s, username)
            user.failed_attempts, user.locked_until = 0, None
            audit.append(s, "user_change", actor.username, "user", username, {"unlocked": True})

    def _require_admin(self, s, actor: AuthSession, what: str) -> None:
        """The actor's session is live and their role, read from the database now, is admin."""
        actor.ensure_active(self.clock())
        row = s.get(User, actor.user_id, populate_existing=True)
        if row is None or not row.active or row.role != "admin" or row.username != actor.username:
            raise RoleError(f"only an admin may {what}")

    @staticmethod
    def _admins(s) -> int:
        return s.scalar(select(func.count(User.id)).where(User.role == "admin", User.active.is_(True))) or 0

    def change_password(self, username: str, old_password: str, new_password: str,
                        p12_path: Path | None = None) -> None:
        """Change a password after checking the old one; re-encrypts the user's PKCS#12 key file too."""
        check_policy(new_password)
        self.authenticate(username, old_password)
        path = p12_path or default_p12_path(username)
        rewrapped = False
        if path.exists():
            try:
                rewrap_p12(path, old_password, new_password)
                rewrapped = True
            except KeyError_:
                pass  # the key has its own password (chosen at `cert create --key-password`): leave it
        new_hash = hash_password(new_password, self.hasher)  # the slow hash before the write lock is taken
        with self.db.write_session() as s:
            user = self._get(s, username)
            user.password_hash = new_hash
            audit.append(s, "passwd", username, "user", username, {"key_rewrapped": rewrapped})

    def check_may_register(self, username: str, actor: AuthSession) -> None:
        """Raise RoleError unless `actor` may register a signing certificate for `username` now."""
        with self.db.session() as s:
            self._check_register(s, self._get(s, username), actor)

    def _check_register(self, s, user: User, actor: AuthSession | None) -> None:
        if user.role not in signing_roles():
            raise RoleError(f"{user.username} is a {user.role}: only {', '.join(sorted(signing_roles()))} "
                            "get signing certificates")
        if actor is None:
            raise RoleError("registering a signing certificate needs an authenticated user")
        if self._admins(s) or actor.user_id != user.id:
            self._require_admin(s, actor, "register signing certificates")
        else:
            actor.ensure_active(self.clock())

    def pin_certificate(self, username: str, cert_der: bytes, actor: AuthSession | None = None) -> None:
        """Register the certificate this user signs with (signing with any other is refused).

        Only users whose current role may sign get one. `actor` must be an authenticated admin; on a
        workstation without any admin account the user may register their own (actor is that user)."""
        with self.db.write_session() as s:
            user = self._get(s, username)
            self._check_register(s, user, actor)
            if user.cert_sha256 and user.cert_sha256 not in (user.cert_history or []):
                user.cert_history = [*(user.cert_history or []), user.cert_sha256]
            user.cert_der = cert_der
            user.cert_sha256 = certificate_fingerprint(cert_der)
            audit.append(s, "cert_create", actor.username, "user", username, {"cert_sha256": user.cert_sha256})

    @classmethod
    def from_settings(cls, database, settings=None, **kwargs) -> UserService:
        """Lock-out and timeout from settings: auth_max_failures (5), auth_lockout_minutes (15),
        session_timeout_minutes (30)."""
        from app.settings import current_settings

        st = settings or current_settings()
        return cls(database, max_failures=int(st.get("auth_max_failures", 5)),
                   lockout=dt.timedelta(minutes=float(st.get("auth_lockout_minutes", 15))),
                   session_timeout=dt.timedelta(minutes=float(st.get("session_timeout_minutes", 30))), **kwargs)

    def certificate_of(self, username: str) -> bytes | None:
        with self.db.session() as s:
            return self._get(s, username).cert_der

    # -- authentication -----------------------------------------------------------------------------
    def authenticate(self, username: str, password: str) -> AuthSession:
        """Check a password; counts failures and locks the account after `max_failures` in a row."""
        now = self.clock()
        with self.db.write_session() as s:
            user = s.scalar(select(User).where(User.username == username))
            if user is None or not user.active:
                verify_password(DUMMY_HASH, password, self.hasher)  # same timing as a real check
                audit.append(s, "login_failed", username, "user", username, {"reason": "unknown or inactive"})
                s.commit()  # the failed attempt is recorded even though the caller gets an error
                raise AuthError("wrong user name or password")
            locked_until = _aware(user.locked_until)
            if locked_until is not None and locked_until > now:
                audit.append(s, "login_failed", username, "user", username, {"reason": "locked"})
                s.commit()
                raise AccountLockedError(username, locked_until)
            if not verify_password(user.password_hash, password, self.hasher):
                user.failed_attempts += 1
                audit.append(s, "login_failed", username, "user", username,
                             {"failed_attempts": user.failed_attempts})
                if user.failed_attempts >= self.max_failures:
                    user.locked_until = now + self.lockout
                    user.failed_attempts = 0
                    audit.append(s, "lockout", username, "user", username,
                                 {"until": user.locked_until.isoformat()})
                    s.commit()
                    raise AccountLockedError(username, user.locked_until)
                s.commit()
                raise AuthError("wrong user name or password")
            user.failed_attempts, user.locked_until = 0, None
            if needs_rehash(user.password_hash, self.hasher):
                user.password_hash = hash_password(password, self.hasher)
            audit.append(s, "login", username, "user", username, {})
            return AuthSession(user.id, user.username, user.display_name, user.role, self.session_timeout,
                               last_activity=now)

    def reauthenticate(self, session: AuthSession, password: str) -> None:
        """The password re-check before signing: same lock-out rules, refreshes the session."""
        fresh = self.authenticate(session.username, password)
        session.last_activity = fresh.last_activity

    @staticmethod
    def _get(s, username: str) -> User:
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise UserError(f"no user {username!r}")
        return user


DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHRzYWx0$0FfrDjuBg6FI7Nm9MCMRsc1yPwfW6m2Y9W9xc2ZsK2s"
