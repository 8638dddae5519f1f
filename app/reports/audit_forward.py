"""Forward the audit log to the site's audit repository (IHE ATNA): one DICOM PS3.15 Annex A.5 audit message
(the RFC 3881 schema) per entry, in an RFC 5424 syslog frame with RFC 6587 octet counting, over TLS (RFC 5425)
or plain TCP.

The audit log itself is the durable queue: `audit_forward.forwarded_seq` records how far the repository has
been sent everything, so entries written while it is unreachable go out on the next `flush` (the running app
calls it every 30 s and after sign-off, app/audit_forwarder.py; `radstation audit forward` does it from a
timer). Delivery is at-least-once: every message
carries the entry's sequence number and hash, so a repository can drop a repeat.

Setting `audit_repository`: {"host": ..., "port": 6514, "tls": true, "ca_file": ..., "cert_file": ...,
"key_file": ..., "timeout_s": 5}. Empty: nothing is forwarded.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from sqlalchemy import func, select

from app.reports.models import AuditEntry, AuditForward

FACILITY_AUTHPRIV, SEVERITY_NOTICE, SEVERITY_WARNING = 10, 5, 4
APP_NAME = "RadStation"
MSGID = "IHE+RFC-3881"
BATCH = 500

# action -> (EventID code, meaning, EventActionCode); DICOM CID 400 "Audit Event ID"
EVENTS: dict[str, tuple[str, str, str]] = {
    "login": ("110114", "User Authentication", "E"), "login_failed": ("110114", "User Authentication", "E"),
    "lockout": ("110114", "User Authentication", "E"), "logout": ("110114", "User Authentication", "E"),
    "view": ("110110", "Patient Record", "R"), "draft": ("110110", "Patient Record", "C"),
    "edit": ("110110", "Patient Record", "U"), "accept_ai": ("110110", "Patient Record", "U"),
    "preliminary": ("110110", "Patient Record", "U"), "sign": ("110110", "Patient Record", "U"),
    "amend": ("110110", "Patient Record", "C"), "verify": ("110110", "Patient Record", "R"),
    "export": ("110106", "Export", "R"), "send": ("110104", "DICOM Instances Transferred", "R"),
    "send_failed": ("110104", "DICOM Instances Transferred", "R"),
    "user_add": ("110136", "Security Roles Changed", "C"), "user_change": ("110136", "Security Roles Changed", "U"),
    "passwd": ("110137", "User Security Attributes Changed", "U"),
    "cert_create": ("110137", "User Security Attributes Changed", "C"),
    "cert_revoke": ("110137", "User Security Attributes Changed", "D"),
}
FAILURES = frozenset({"login_failed", "lockout", "send_failed"})


class ForwardError(OSError):
    """The audit repository cannot be reached or refused the connection."""


@dataclass(frozen=True)
class Repository:
    host: str
    port: int
    tls: bool = True
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings=None) -> Repository | None:
        from app.settings import current_settings

        cfg = (settings or current_settings()).get("audit_repository") or {}
        if not isinstance(cfg, dict) or not cfg.get("host"):
            return None
        return cls(host=str(cfg["host"]), port=int(cfg.get("port", 6514)), tls=bool(cfg.get("tls", True)),
                   ca_file=str(cfg.get("ca_file", "")), cert_file=str(cfg.get("cert_file", "")),
                   key_file=str(cfg.get("key_file", "")), timeout_s=float(cfg.get("timeout_s", 5)))


def audit_message(entry: AuditEntry, source_id: str) -> str:
    """The DICOM PS3.15 A.5 AuditMessage XML for one entry (the entry itself rides in a detail)."""
    code, meaning, action = EVENTS.get(entry.action, ("110100", "Application Activity", "E"))
    outcome = "4" if entry.action in FAILURES else "0"
    detail = json.dumps({"seq": entry.seq, "action": entry.action, "details": entry.details,
                         "entry_hash": entry.entry_hash}, separators=(",", ":"))
    obj = ""
    if entry.object_id:
        obj = (f"<ParticipantObjectIdentification ParticipantObjectID={quoteattr(entry.object_id)} "
               f"ParticipantObjectTypeCode=\"2\"><ParticipantObjectIDTypeCode csd-code=\"110180\" "
               f"codeSystemName=\"DCM\" originalText={quoteattr(entry.object_type or 'object')}/>"
               f"<ParticipantObjectDetail type=\"radstation-audit-entry\" value={quoteattr(detail)}/>"
               "</ParticipantObjectIdentification>")
    return (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><AuditMessage>"
            f"<EventIdentification EventActionCode=\"{action}\" EventDateTime={quoteattr(entry.at)} "
            f"EventOutcomeIndicator=\"{outcome}\"><EventID csd-code=\"{code}\" codeSystemName=\"DCM\" "
            f"originalText={quoteattr(meaning)}/></EventIdentification>"
            f"<ActiveParticipant UserID={quoteattr(entry.username or '-')} UserIsRequestor=\"true\"/>"
            f"<AuditSourceIdentification AuditSourceID={quoteattr(source_id)}/>{obj}</AuditMessage>")


def syslog_frame(entry: AuditEntry, hostname: str) -> bytes:
    """RFC 5424 message with RFC 6587 octet counting."""
    severity = SEVERITY_WARNING if entry.action in FAILURES else SEVERITY_NOTICE
    try:
        ts = dt.datetime.fromisoformat(entry.at).astimezone(dt.UTC).isoformat(timespec="microseconds")
    except ValueError:
        ts = "-"
    sd = f"[radstation@32473 seq=\"{entry.seq}\" hash=\"{entry.entry_hash}\"]"
    msg = (f"<{FACILITY_AUTHPRIV * 8 + severity}>1 {ts} {hostname} {APP_NAME} - {MSGID} {sd} ").encode() + \
        b"\xef\xbb\xbf" + audit_message(entry, f"{APP_NAME}@{hostname}").encode("utf-8")
    return str(len(msg)).encode() + b" " + msg


def _connect(repo: Repository) -> socket.socket:
    try:
        sock = socket.create_connection((repo.host, repo.port), timeout=repo.timeout_s)
    except OSError as exc:
        raise ForwardError(f"audit repository {repo.host}:{repo.port} unreachable: {exc}") from exc
    if not repo.tls:
        return sock
    ctx = ssl.create_default_context(cafile=repo.ca_file or None)
    if repo.cert_file:
        ctx.load_cert_chain(repo.cert_file, repo.key_file or None)
    try:
        return ctx.wrap_socket(sock, server_hostname=repo.host)
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        raise ForwardError(f"TLS with audit repository {repo.host}:{repo.port} failed: {exc}") from exc


def pending(database) -> int:
    with database.session() as s:
        cursor = s.get(AuditForward, 1)
        done = cursor.forwarded_seq if cursor else 0
        return int(s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.seq > done)) or 0)


def flush(database, repo: Repository | None = None) -> int:
    """Send every entry not yet forwarded; returns how many were sent. ForwardError when unreachable (the
    entries stay queued)."""
    repo = repo or Repository.from_settings()
    if repo is None:
        return 0
    host = socket.gethostname() or "-"
    sent = 0
    with _connect(repo) as sock:
        while True:
            with database.session() as s:  # read only: nothing is held while the network is waited on
                cursor = s.get(AuditForward, 1)
                done = cursor.forwarded_seq if cursor is not None else 0
                batch = list(s.scalars(select(AuditEntry).where(AuditEntry.seq > done)
                                       .order_by(AuditEntry.seq).limit(BATCH)))
                if not batch:
                    return sent
                frames = b"".join(syslog_frame(e, host) for e in batch)
                last = batch[-1].seq
            try:
                sock.sendall(frames)
            except OSError as exc:
                raise ForwardError(f"sending to the audit repository failed: {exc}") from exc
            database.run_write(lambda s, last=last: _advance(s, last))
            sent += len(batch)


def _advance(session, last_seq: int) -> None:
    """Move the forwarded cursor to `last_seq` in a write transaction of its own, so audit entries written
    meanwhile (every access writes one) cannot make it fail; it never moves back."""
    cursor = session.get(AuditForward, 1)
    if cursor is None:
        session.add(AuditForward(id=1, forwarded_seq=last_seq))
    elif cursor.forwarded_seq < last_seq:
        cursor.forwarded_seq = last_seq
