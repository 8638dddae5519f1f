"""Tables for users, reports (with immutable signed versions), signatures, the audit chain and the outbox.

Declared on the study database's `Base`; created by the Alembic revision 0002_reports. A report belongs
to a study by its Study Instance UID (not a row id) so a re-imported study keeps its reports.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.orm.attributes import get_history

from app.db.base import Base, utcnow

ROLES: tuple[str, ...] = ("radiologist", "resident", "admin")
VERSION_STATES: tuple[str, ...] = ("draft", "preliminary", "final")
VERSION_KINDS: tuple[str, ...] = ("original", "amendment", "addendum")
OUTBOX_STATES: tuple[str, ...] = ("queued", "sending", "retry", "sent", "failed")


class ImmutableVersionError(RuntimeError):
    """Something tried to change a signed (final) report version."""


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column()
    cert_der: Mapped[bytes | None] = mapped_column(LargeBinary)  # the certificate pinned for this user
    cert_sha256: Mapped[str] = mapped_column(String(64), default="")
    # fingerprints of earlier certificates: reports signed with them stay verifiable after a key change
    cert_history: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Report(Base):
    __tablename__ = "report"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    exam_type: Mapped[str] = mapped_column(String(64), default="chest_xray")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))

    versions: Mapped[list[ReportVersion]] = relationship(
        back_populates="report", order_by="ReportVersion.version_no", cascade="all, delete-orphan"
    )


class ReportVersion(Base):
    """One version of a report's text. Once `status == 'final'` the row never changes again."""

    __tablename__ = "report_version"
    __table_args__ = (UniqueConstraint("report_id", "version_no", name="uq_report_version_report_no"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("report.id", ondelete="CASCADE"), index=True)
    version_no: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16), default="original")
    status: Mapped[str] = mapped_column(String(16), default="draft")
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("report_version.id"))
    sections: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # AI provenance: {"engine", "weights_hash", "seed", "findings", "impression", "token_uncertainty"}
    ai_draft: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ai_generated: Mapped[bool] = mapped_column(Boolean, default=False)
    human_edited: Mapped[bool] = mapped_column(Boolean, default=False)
    ai_accepted: Mapped[bool] = mapped_column(Boolean, default=False)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    revision: Mapped[int] = mapped_column(Integer, default=0)  # autosave counter
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    signed_at: Mapped[str] = mapped_column(String(40), default="")  # ISO text exactly as signed
    amend_reason: Mapped[str] = mapped_column(Text, default="", server_default="")  # why it was amended

    # Optimistic check: every UPDATE says "WHERE revision = <the one read>", so a write based on text that
    # another workstation changed meanwhile matches no row and fails instead of overwriting it.
    __mapper_args__ = {"version_id_col": revision, "version_id_generator": False}

    report: Mapped[Report] = relationship(back_populates="versions")
    signature: Mapped[ReportSignature | None] = relationship(back_populates="version", uselist=False)


class ReportClaim(Base):
    """Who is editing a report now (one row per report, renewed while they work, stale after `expires_at`).

    Mutable on purpose and not audited per heartbeat: the audit log records taking and losing claims.
    """

    __tablename__ = "report_claim"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("report.id", ondelete="CASCADE"), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    username: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    workstation: Mapped[str] = mapped_column(String(200), default="")
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class ReportSignature(Base):
    __tablename__ = "report_signature"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("report_version.id"), unique=True)
    signer_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    signed_at: Mapped[str] = mapped_column(String(40))
    canonical: Mapped[bytes] = mapped_column(LargeBinary)  # the exact bytes that were signed
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    algorithm: Mapped[str] = mapped_column(String(40))
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)

    version: Mapped[ReportVersion] = relationship(back_populates="signature")


class ReportArtifact(Base):
    """A document made at sign time that cannot be re-made without the signer's key (the signed PDF)."""

    __tablename__ = "report_artifact"
    __table_args__ = (UniqueConstraint("version_id", "kind", name="uq_report_artifact_version_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("report_version.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # signed_pdf
    data: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """One link of the hash chain: entry_hash = SHA-256(prev_hash || canonical(content))."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[str] = mapped_column(String(40))  # ISO UTC text, exactly as hashed
    username: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(32), index=True)
    object_type: Mapped[str] = mapped_column(String(32), default="")
    object_id: Mapped[str] = mapped_column(String(128), default="")
    details: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON text
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64), default="")  # keyed checkpoint over entry_hash (0003)


class AuditHead(Base):
    """The newest link (count + hash), so that cutting entries off the end is detected too."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default="")
    mac: Mapped[str] = mapped_column(String(64), default="")  # keyed checkpoint over (count, last_hash)


class AuditForward(Base):
    """How far the audit log has been sent to the audit repository (the log itself is the queue)."""

    __tablename__ = "audit_forward"

    id: Mapped[int] = mapped_column(primary_key=True)
    forwarded_seq: Mapped[int] = mapped_column(Integer, default=0)


class OutboxItem(Base):
    __tablename__ = "outbox_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("report_version.id"), index=True)
    document: Mapped[str] = mapped_column(String(16))  # sr | pdf | kos | ai-sr | gsps | measurements
    destination: Mapped[str] = mapped_column(String(64))  # name of a configured PACS node
    protocol: Mapped[str] = mapped_column(String(16))  # cstore | stow
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    last_error: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # the DICOM Part 10 bytes to send
    sop_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()


@event.listens_for(ReportVersion, "before_update")
def _refuse_changes_to_signed(_mapper: Any, _conn: Any, target: ReportVersion) -> None:
    """Last line of defence under the service: a version that was final in the database stays as it is."""
    hist = get_history(target, "status")
    previous = (hist.deleted or hist.unchanged or [None])[0]
    if previous == "final":
        raise ImmutableVersionError(f"report version {target.id} is signed and cannot be changed")
