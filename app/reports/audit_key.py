"""The audit log's HMAC key, kept outside the database.

Someone with write access to the database (or a copy of it) can recompute an unkeyed hash chain; they
cannot recompute HMAC-SHA256 checkpoints without this key. It is a 32-byte random file, owner-only, in
the data dir's keys folder by default; the `audit_key_file` setting (or RADSTATION_AUDIT_KEY_FILE) puts it
elsewhere, e.g. on a volume the database administrators cannot read. Lose it and the log can no longer
be proven intact: back it up with the workstation's signing keys.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_BYTES = 32
_cache: dict[str, bytes] = {}
_settings_file_cache: dict[str, tuple[tuple, str]] = {}  # key -> (settings.json's path/mtime/size, value)


class AuditKeyError(RuntimeError):
    """The audit key is missing or unreadable while the log already depends on it."""


def audit_key_path(settings=None) -> Path:
    env = os.environ.get("RADSTATION_AUDIT_KEY_FILE")
    if env:
        return Path(env)
    from app.settings import settings_in_use

    given = settings or settings_in_use()  # the app's settings object: changes in the Settings dialog reach it
    configured = (given.get("audit_key_file") or "") if given is not None else _configured_in_file()
    if configured:
        return Path(configured)
    from app.reports.keys import keys_dir

    return keys_dir() / "audit-hmac.key"


def _configured_in_file() -> str:
    """`audit_key_file` from settings.json, read again only when the file changed: outside the app (CLI,
    services) every audit append asks for the key's place, and re-parsing the file each time cost a file read
    per entry."""
    from app.paths import config_dir
    from app.settings import Settings

    path = config_dir() / "settings.json"
    try:
        st = path.stat()
        stamp: tuple = (str(path), st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (str(path), None, None)
    cached = _settings_file_cache.get("audit_key_file")
    if cached is not None and cached[0] == stamp:
        return cached[1]
    value = str(Settings(path).get("audit_key_file") or "")  # a broken file raises, as it did
    _settings_file_cache["audit_key_file"] = (stamp, value)
    return value


def load_key(*, create: bool) -> bytes | None:
    """The key bytes; creates a new key when `create` and none exists; None when absent."""
    path = audit_key_path()
    cached = _cache.get(str(path))
    if cached is not None and path.exists():
        return cached
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            return None
        data = secrets.token_bytes(KEY_BYTES)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise AuditKeyError(f"cannot read the audit key {path}: {exc}") from exc
    if len(data) != KEY_BYTES:
        raise AuditKeyError(f"the audit key {path} is damaged ({len(data)} bytes, expected {KEY_BYTES})")
    _cache[str(path)] = data
    return data


def entry_mac(key: bytes, seq: int, entry_hash: str) -> str:
    return hmac.new(key, f"radstation-audit-entry/1|{seq}|{entry_hash}".encode("ascii"), hashlib.sha256).hexdigest()


def head_mac(key: bytes, count: int, last_hash: str) -> str:
    return hmac.new(key, f"radstation-audit-head/1|{count}|{last_hash}".encode("ascii"), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii", "replace"), b.encode("ascii", "replace"))
