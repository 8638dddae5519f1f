"""Report claiming and the optimistic revision check: two readers, one report, no last-writer-wins.

Runs on SQLite and on PostgreSQL (tests/app/conftest.py); "workstations" are two ClaimServices with
their own names on the one database, as two machines in a department would be.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.reports import audit
from app.reports.claims import ClaimService, ReportClaimedError
from app.reports.models import AuditEntry, ReportVersion
from app.reports.service import ReportConflictError
from tests.support.reports_testing import PASSWORD, STUDY_UID, make_user


@pytest.fixture
def two(env, radiologist):
    other = make_user(env, "rad2", "radiologist")
    v = env.service.open_or_create(STUDY_UID, radiologist)
    return radiologist, other, v, ClaimService(env.db, workstation="ws-a"), ClaimService(env.db, workstation="ws-b")


def test_claim_is_visible_to_others_and_refuses_their_writes(env, two):
    me, other, v, ws_a, ws_b = two
    mine = ws_a.claim(STUDY_UID, me)
    assert mine.username == "rad" and mine.workstation == "ws-a"
    held = ws_b.holder(STUDY_UID)
    assert held is not None and "being read by Dr Rad (rad) on ws-a" in held.describe()
    with pytest.raises(ReportClaimedError, match="being read by Dr Rad"):
        ws_b.claim(STUDY_UID, other)
    with pytest.raises(ReportClaimedError):
        env.service.save_draft(v.id, {"findings": "other's words"}, other)
    with pytest.raises(ReportClaimedError):
        env.service.sign(v.id, other, PASSWORD)
    assert env.service.save_draft(v.id, {"findings": "my words"}, me) == 1
    assert ws_a.claim(STUDY_UID, me).expires_at >= mine.expires_at  # renewing our own claim is fine
    ws_a.release(mine)
    assert ws_b.holder(STUDY_UID) is None
    assert ws_b.claim(STUDY_UID, other).username == "rad2"
    assert env.service.version(v.id).content.get("findings") == "my words"


def test_stale_claim_expires_and_is_taken_over_with_an_audit_entry(env, two):
    me, other, v, _ws_a, ws_b = two
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    crashed = ClaimService(env.db, workstation="ws-crashed", clock=lambda: an_hour_ago)
    crashed.claim(STUDY_UID, me)  # the workstation died an hour ago; its 10-minute claim lapsed
    assert ws_b.holder(STUDY_UID) is None
    taken = ws_b.claim(STUDY_UID, other)
    assert taken.username == "rad2"
    with pytest.raises(ReportClaimedError, match="rad2"):
        env.service.save_draft(v.id, {"findings": "from the crashed session"}, me)
    with env.db.session() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "claim").order_by(AuditEntry.seq.desc()))
        assert '"took_over"' in entry.details and "ws-crashed" in entry.details
        assert audit.verify_chain(s).ok


def test_conflicting_save_is_refused_with_who_and_nothing_is_overwritten(env, two):
    me, other, v, _ws_a, _ws_b = two
    base = env.service.version(v.id).revision
    env.service.save_draft(v.id, {"findings": "rad2 wrote this"}, other, expected_revision=base)
    with pytest.raises(ReportConflictError, match=r"changed by rad2 at .* \(now revision 1\).*revision 0"):
        env.service.save_draft(v.id, {"findings": "rad wrote this"}, me, expected_revision=base)
    assert env.service.version(v.id).content.get("findings") == "rad2 wrote this"
    assert env.service.save_draft(v.id, {"findings": "rad merged"}, me, expected_revision=base + 1) == base + 2


def test_the_database_row_check_refuses_a_write_based_on_an_old_read(env, two):
    """Two sessions read revision N; the first commits N+1; the second's UPDATE matches no row."""
    _me, _other, v, _ws_a, _ws_b = two
    # The second reader's read transaction is over before it writes, as an editor's is (it read the version
    # when the study opened); SQLite would otherwise refuse its stale snapshot outright ("locked").
    with Session(env.db.engine, expire_on_commit=False) as first, \
            Session(env.db.engine, expire_on_commit=False) as second:
        a = first.get(ReportVersion, v.id)
        b = second.get(ReportVersion, v.id)
        second.commit()
        a.sections, a.revision = {"findings": "first"}, a.revision + 1
        first.commit()
        b.sections, b.revision = {"findings": "second"}, b.revision + 1
        with pytest.raises(StaleDataError):
            second.commit()
    with env.db.engine.connect() as c:
        assert "first" in str(c.scalar(text("select sections from report_version where id=:i"), {"i": v.id}))
