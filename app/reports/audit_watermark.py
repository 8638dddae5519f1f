"""The newest audit entry this workstation has seen committed, kept outside the database beside the audit key.

Keyed checkpoints stop an insider from rewriting entries, but not from rolling the log back: cut the newest
entries off and put back the head row (count, hash and its valid checkpoint) saved from an earlier copy, and
every remaining entry still verifies. This high-water mark, written after each commit that appended entries,
remembers (seq, hash) of the newest one, MACed with the audit key; `verify_chain` then reports a log that
ends before it, or holds another entry at that place (an older or rewritten copy put back).

One mark per log, named by the hash of the log's first entry, so one workstation may use several databases.
Restoring the database from a backup is such a rollback too: `radstation audit verify` says so, and the
site decides (delete this file to accept the restored log as the new baseline).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from pathlib import Path

from app.reports import audit_key

MAX_LOGS = 64  # marks kept per workstation (one per database used), the most recently written first


def watermark_path() -> Path:
    key_path = audit_key.audit_key_path()
    return key_path.with_name(key_path.stem + ".seen.json")


def _mac(key: bytes, genesis: str, seq: int, entry_hash: str) -> str:
    msg = f"radstation-audit-seen/1|{genesis}|{seq}|{entry_hash}".encode("ascii")
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"the audit high-water mark {path} cannot be read ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"the audit high-water mark {path} is damaged")
    return data


@contextlib.contextmanager
def _locked(path: Path):
    """Serialise writers on this workstation (several RadStation processes share the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: last writer wins, the mark only ever moves forward per process
            pass
        yield
    finally:
        os.close(fd)


def record(key: bytes, genesis: str, seq: int, entry_hash: str) -> None:
    """Move the mark of log `genesis` forward to (seq, entry_hash); never backward."""
    path = watermark_path()
    with _locked(path):
        try:
            marks = _read(path)
        except ValueError:
            marks = {}  # a damaged mark is replaced by the current state rather than blocking every commit
        old = marks.get(genesis)
        if isinstance(old, dict) and isinstance(old.get("seq"), int) and old["seq"] >= seq:
            return
        marks.pop(genesis, None)
        marks = {genesis: {"seq": seq, "hash": entry_hash, "mac": _mac(key, genesis, seq, entry_hash)},
                 **dict(list(marks.items())[:MAX_LOGS - 1])}
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(marks, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def read_mark(key: bytes, genesis: str) -> tuple[int, str] | None:
    """(seq, entry hash) of log `genesis`'s mark, None when there is none; ValueError when damaged/altered."""
    path = watermark_path()
    mark = _read(path).get(genesis)
    if mark is None:
        return None
    try:
        seq, entry_hash, mac = int(mark["seq"]), str(mark["hash"]), str(mark["mac"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"the audit high-water mark {path} is damaged") from None
    if not audit_key.same(_mac(key, genesis, seq, entry_hash), mac):
        raise ValueError(f"the audit high-water mark {path} was altered (its keyed checkpoint does not match)")
    return seq, entry_hash


def may_advance(key: bytes, genesis: str, hash_at: Callable[[int], str | None]) -> bool:
    """Whether a new entry may move the mark: only a log that still holds the marked entry (a rolled-back or
    replaced log keeps its old mark, so new entries cannot bury the evidence)."""
    try:
        mark = read_mark(key, genesis)
    except ValueError:
        return False
    return mark is None or hash_at(mark[0]) == mark[1]


def check(key: bytes, genesis: str, hash_at: Callable[[int], str | None],
          count: int) -> tuple[int | None, str] | None:
    """None when the log reaches this workstation's mark with the same entry there; else (seq the problem is
    at, or None, and the problem). `hash_at(seq)`: the log's entry hash at seq; `count`: its last seq."""
    try:
        mark = read_mark(key, genesis)
    except ValueError as exc:
        return None, str(exc)
    if mark is None:
        return None
    seq, entry_hash = mark
    if seq > count:
        return count + 1, (f"the log ends at entry seq={count} but this workstation saw entry seq={seq} "
                           f"({entry_hash[:12]}…) committed: entries were cut off the end and the head put back "
                           "(or the database was restored from an older copy)")
    if hash_at(seq) != entry_hash:
        return seq, (f"entry seq={seq} is not the one this workstation saw committed ({entry_hash[:12]}…): the "
                     "log was replaced by another or rewritten copy")
    return None
