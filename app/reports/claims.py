"""Report claiming: opening a report for editing claims it, so other readers see "being read by Dr X".

Many workstations share one database, so two radiologists could otherwise open and edit the same
report. A claim is one row per report with an expiry that the editor renews while it is open; a claim
whose workstation crashed or was left idle simply expires and the next reader takes it over (audited).
Every report write checks the claim in its own transaction (`ensure_writable`), and the optimistic
revision check in the service catches whatever slips between, so a conflicting save is refused, never
last-writer-wins. Times come from the workstations' clocks (kept by NTP in a hospital network).
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.reports import audit
from app.reports.models import Report, ReportClaim
from app.reports.users import AuthSession

DEFAULT_TTL = dt.timedelta(minutes=10)


def this_workstation() -> str:
    return socket.gethostname() or "this workstation"


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class ClaimView:
    report_id: int
    study_uid: str
    user_id: int
    username: str
    display_name: str
    workstation: str
    claimed_at: dt.datetime
    expires_at: dt.datetime

    @property
    def who(self) -> str:
        return f"{self.display_name} ({self.username})" if self.display_name else self.username

    def describe(self) -> str:
        since = self.claimed_at.astimezone().strftime("%H:%M")
        until = self.expires_at.astimezone().strftime("%H:%M")
        return (f"being read by {self.who} on {self.workstation or 'another workstation'} since {since} "
                f"(the claim lapses at {until} unless they keep working)")


class ReportClaimedError(PermissionError):
    """Another reader holds a live claim on the report."""

    def __init__(self, holder: ClaimView) -> None:
        super().__init__(f"This report is {holder.describe()}; it is open read-only here.")
        self.holder = holder


def _view(row: ReportClaim, study_uid: str) -> ClaimView:
    return ClaimView(report_id=row.report_id, study_uid=study_uid, user_id=row.user_id, username=row.username,
                     display_name=row.display_name, workstation=row.workstation,
                     claimed_at=_aware(row.claimed_at), expires_at=_aware(row.expires_at))


def live_claim(s: Session, report_id: int, now: dt.datetime) -> ReportClaim | None:
    row = s.scalar(select(ReportClaim).where(ReportClaim.report_id == report_id))
    return row if row is not None and _aware(row.expires_at) > now else None


def ensure_writable(s: Session, report: Report, user: AuthSession, now: dt.datetime | None = None) -> None:
    """Refuse a write when someone else holds a live claim on `report` (called inside the write's transaction)."""
    row = live_claim(s, report.id, now or dt.datetime.now(dt.UTC))
    if row is not None and row.user_id != user.user_id:
        raise ReportClaimedError(_view(row, report.study_uid))


class ClaimService:
    def __init__(self, database, *, ttl: dt.timedelta = DEFAULT_TTL, workstation: str | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.db = database
        self.ttl = ttl
        self.workstation = workstation or this_workstation()
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def holder(self, study_uid: str) -> ClaimView | None:
        """The live claim on the study's report, if any (for "being read by ..." in the UI)."""
        return self.holders([study_uid]).get(study_uid)

    def holders(self, study_uids: list[str]) -> dict[str, ClaimView]:
        """Live claims for many studies in one query (the worklist's page)."""
        if not study_uids:
            return {}
        now = self.clock()
        with self.db.session() as s:
            rows = s.execute(select(ReportClaim, Report.study_uid).join(Report, Report.id == ReportClaim.report_id)
                             .where(Report.study_uid.in_(study_uids))).all()
            return {uid: _view(row, uid) for row, uid in rows if _aware(row.expires_at) > now}

    def claim(self, study_uid: str, user: AuthSession) -> ClaimView:
        """Claim (or renew) the study's report for `user`; ReportClaimedError while another reader holds it."""
        user.ensure_active()
        for attempt in range(2):
            try:
                return self._claim_once(study_uid, user)
            except IntegrityError:  # another workstation inserted the first claim at the same moment
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _claim_once(self, study_uid: str, user: AuthSession) -> ClaimView:
        """One try, a write transaction from its start (`run_write`): a commit by another thread in between
        (access audit, autosave) makes it wait and retry, never fail with "database is locked"."""
        now = self.clock()

        def work(s: Session) -> ClaimView:
            report = s.scalar(select(Report).where(Report.study_uid == study_uid).order_by(Report.id))
            if report is None:
                raise LookupError(f"study {study_uid} has no report to claim yet")
            # write-lock the claim row first (row lock on PostgreSQL, the database write lock on SQLite),
            # so two workstations cannot both read "free" and both take it
            s.execute(update(ReportClaim).where(ReportClaim.report_id == report.id)
                      .values(username=ReportClaim.username).execution_options(synchronize_session=False))
            row = s.scalar(select(ReportClaim).where(ReportClaim.report_id == report.id)
                           .with_for_update().execution_options(populate_existing=True))
            expires = now + self.ttl
            if row is None:
                row = ReportClaim(report_id=report.id, user_id=user.user_id, username=user.username,
                                  display_name=user.display_name, workstation=self.workstation, claimed_at=now,
                                  expires_at=expires)
                s.add(row)
                s.flush()
                audit.append(s, "claim", user.username, "report", report.id,
                             {"study_uid": study_uid, "workstation": self.workstation})
            elif row.user_id == user.user_id:
                moved = row.workstation != self.workstation
                row.expires_at = expires
                row.workstation = self.workstation
                if moved:
                    row.claimed_at = now
                    audit.append(s, "claim", user.username, "report", report.id,
                                 {"study_uid": study_uid, "workstation": self.workstation})
            elif _aware(row.expires_at) <= now:
                previous = {"user": row.username, "workstation": row.workstation,
                            "expired_at": _aware(row.expires_at).isoformat()}
                row.user_id, row.username, row.display_name = user.user_id, user.username, user.display_name
                row.workstation, row.claimed_at, row.expires_at = self.workstation, now, expires
                audit.append(s, "claim", user.username, "report", report.id,
                             {"study_uid": study_uid, "workstation": self.workstation, "took_over": previous})
            else:
                raise ReportClaimedError(_view(row, study_uid))
            s.flush()
            return _view(row, study_uid)

        return self.db.run_write(work)

    def release(self, claim: ClaimView) -> None:
        """Give a claim back (closing the report); one taken over by someone else meanwhile is left alone."""
        def work(s: Session) -> None:
            row = s.scalar(select(ReportClaim).where(ReportClaim.report_id == claim.report_id,
                                                     ReportClaim.user_id == claim.user_id))
            if row is not None:
                s.delete(row)

        self.db.run_write(work)
