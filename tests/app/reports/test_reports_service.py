"""Report lifecycle, immutability, roles, lock-out, audit chain and stored-version verification."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import inspect, select, text

from app.db.migrate import head_revision
from app.db.models import Study
from app.reports import audit
from app.reports.models import ImmutableVersionError, ReportVersion
from app.reports.service import ReportError
from app.reports.users import AccountLockedError, AuthError, RoleError, SessionExpiredError
from app.reports.verify import verify_stored_version
from tests.support.reports_testing import PASSWORD, STUDY_UID, admin_session, drop_trigger, make_user

PROV = {"engine": "medim-diffusion", "weights_hash": "ab" * 32, "seed": 7}


def _status(env) -> str:
    with env.db.session() as s:
        return s.scalar(select(Study.report_status).where(Study.study_uid == STUDY_UID))


def test_migration_creates_report_tables(env):
    names = set(inspect(env.db.engine).get_table_names())
    assert {"app_user", "report", "report_version", "report_signature", "audit_entry", "audit_head",
            "outbox_item"} <= names
    with env.db.engine.connect() as c:
        assert c.scalar(text("select version_num from alembic_version")) == head_revision()


def test_full_lifecycle_with_amendment_and_addendum(env, radiologist, resident):
    v = env.service.open_or_create(STUDY_UID, resident)
    assert v.status == "draft" and v.content.get("technique")  # from the chest_xray template
    assert _status(env) == "draft"
    env.service.load_ai_draft(v.id, "Small left effusion.", "Left effusion.", PROV, resident)
    with pytest.raises(RoleError):
        env.service.sign(v.id, resident, PASSWORD)
    env.service.mark_preliminary(v.id, resident)
    assert _status(env) == "preliminary"
    with pytest.raises(ReportError, match="not been reviewed"):
        env.service.sign(v.id, radiologist, PASSWORD)
    rev = env.service.save_draft(v.id, {**env.service.version(v.id).content.to_dict(),
                                        "findings": "Small left pleural effusion."}, radiologist)
    assert rev >= 2 and env.service.version(v.id).human_edited
    signed = env.service.sign(v.id, radiologist, PASSWORD)
    assert signed.status == "final" and signed.signer == "rad" and _status(env) == "final"
    assert verify_stored_version(env.db, v.id).ok

    # a signed version is immutable: the service refuses, and so does the ORM layer under it
    with pytest.raises(ImmutableVersionError):
        env.service.save_draft(v.id, {"findings": "changed"}, radiologist)
    with pytest.raises(ImmutableVersionError):
        env.service.load_ai_draft(v.id, "x", "y", PROV, radiologist)
    with pytest.raises(ImmutableVersionError), env.db.session() as s:
        s.get(ReportVersion, v.id).sections = {"findings": "sneaky"}
    with pytest.raises(Exception, match="immutable"), env.db.engine.begin() as c:  # the database's trigger
        c.execute(text("update report_version set sections='{}' where id=:i"), {"i": v.id})

    am = env.service.amend(v.id, radiologist, "amendment", reason="New finding on review.")
    assert am.supersedes_id == v.id and am.version_no == 2 and am.status == "draft"
    with pytest.raises(ReportError):
        env.service.amend(v.id, radiologist, "addendum")  # one open version at a time
    env.service.save_draft(am.id, {**am.content.to_dict(), "impression": "Small left effusion, new."}, radiologist)
    assert _status(env) == "final"
    signed_am = env.service.sign(am.id, radiologist, PASSWORD)
    assert _status(env) == "amended"
    assert verify_stored_version(env.db, am.id).ok
    assert signed_am.signature["canonical"].count(b'"supersedes":{"signature_sha256"') == 1

    add = env.service.amend(am.id, radiologist, "addendum")
    with pytest.raises(ImmutableVersionError):
        env.service.save_draft(add.id, {**add.content.to_dict(), "findings": "rewritten"}, radiologist)
    env.service.save_draft(add.id, {**add.content.to_dict(), "addendum": "Discussed with Dr Smith."}, radiologist)
    assert env.service.sign(add.id, radiologist, PASSWORD).content.get("addendum") == "Discussed with Dr Smith."
    assert [h.kind for h in env.service.history(STUDY_UID)] == ["original", "amendment", "addendum"]
    with env.db.session() as s:
        assert audit.verify_chain(s).ok


def test_verify_detects_one_byte_change_in_stored_report(env, radiologist):
    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": "No pneumothorax."}, radiologist)
    env.service.sign(v.id, radiologist, PASSWORD)
    assert verify_stored_version(env.db, v.id).ok
    with env.db.engine.begin() as c:  # an attacker with file access first removes the trigger
        drop_trigger(c, "report_version_final_immutable")
        raw = c.scalar(text("select sections from report_version where id=:i"), {"i": v.id})
        raw = raw if isinstance(raw, str) else json.dumps(raw)  # PostgreSQL's driver hands JSON back parsed
        c.execute(text("update report_version set sections=:s where id=:i"),
                  {"s": raw.replace("No pneumothorax", "No pneumothoraX"), "i": v.id})
    res = verify_stored_version(env.db, v.id)
    assert not res.ok and any("findings" in p for p in res.problems), res.summary()


def test_verify_detects_changed_signed_bytes(env, radiologist):
    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.sign(v.id, radiologist, PASSWORD)
    with env.db.engine.begin() as c:
        drop_trigger(c, "report_signature_immutable")
        raw = c.scalar(text("select canonical from report_signature"))
        i = raw.index(b"Lungs")
        c.execute(text("update report_signature set canonical=:b"), {"b": raw[:i] + b"l" + raw[i + 1:]})
    res = verify_stored_version(env.db, v.id)
    assert not res.ok and any("altered" in p for p in res.problems)


def test_lockout_after_repeated_failures_and_session_timeout(env, radiologist):
    for _ in range(2):
        with pytest.raises(AuthError):
            env.users.authenticate("rad", "wrong password")
    with pytest.raises(AccountLockedError):
        env.users.authenticate("rad", "wrong password")
    with pytest.raises(AccountLockedError):  # even the right password is refused while locked
        env.users.authenticate("rad", PASSWORD)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11)
    env.users.clock = lambda: later
    assert env.users.authenticate("rad", PASSWORD).username == "rad"
    s = radiologist
    with pytest.raises(SessionExpiredError):
        s.ensure_active(s.last_activity + dt.timedelta(hours=1))
    with pytest.raises(AuthError):
        env.users.authenticate("nobody", PASSWORD)


def test_only_admin_manages_users(env, resident):
    admin = make_user(env, "boss", "admin", with_key=False)
    with pytest.raises(RoleError):
        env.users.add_user("x1", PASSWORD, "resident", actor=resident)
    env.users.add_user("x2", PASSWORD, "resident", actor=admin)
    assert {u["username"] for u in env.users.list_users()} == {"root", "res", "boss", "x2"}


def test_sign_with_wrong_password_fails_and_counts(env, radiologist):
    v = env.service.open_or_create(STUDY_UID, radiologist)
    with pytest.raises(AuthError):
        env.service.sign(v.id, radiologist, "not my password")
    assert env.service.version(v.id).status == "draft"


def test_audit_chain_detects_altered_deleted_reordered_and_truncated(env, radiologist):
    v = env.service.open_or_create(STUDY_UID, radiologist)
    for i in range(3):
        env.service.save_draft(v.id, {"findings": f"text {i}"}, radiologist)
    with env.db.session() as s:
        assert audit.verify_chain(s).ok
    with env.db.engine.begin() as c:
        drop_trigger(c, "audit_entry_no_update")
        drop_trigger(c, "audit_entry_no_delete")
    cases = {
        "altered": "update audit_entry set details=replace(details,'findings','findingz') where action='edit' "
                   "and seq=(select max(seq) from audit_entry where action='edit')",
        "deleted": "delete from audit_entry where seq=3",
        "reordered": "update audit_entry set id=-id where seq in (4,5)",
        "truncated": "delete from audit_entry where seq=(select max(seq) from audit_entry)",
    }
    for name, sql in cases.items():
        with env.db.engine.connect() as c:
            tx = c.begin()
            c.execute(text(sql))
            from sqlalchemy.orm import Session
            with Session(bind=c) as s:
                res = audit.verify_chain(s)
            tx.rollback()
        assert not res.ok, name
    with env.db.session() as s:
        assert audit.verify_chain(s).ok


def test_key_rotation_keeps_old_signatures_verifiable(env, radiologist):
    from app.reports.keys import create_self_signed, default_p12_path

    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.sign(v.id, radiologist, PASSWORD)
    new = create_self_signed("Dr Rad", PASSWORD, default_p12_path("rad"))  # like `cert create --force`
    env.users.pin_certificate("rad", new.certificate_der, actor=admin_session(env))  # admin registers it
    am = env.service.amend(v.id, radiologist, reason="Impression updated.")
    env.service.save_draft(am.id, {**am.content.to_dict(), "impression": "Updated."}, radiologist)
    env.service.sign(am.id, radiologist, PASSWORD)
    assert verify_stored_version(env.db, v.id).ok and verify_stored_version(env.db, am.id).ok


def test_migration_downgrade_removes_report_tables(env):
    from alembic import command

    from app.db.migrate import alembic_config

    cfg = alembic_config(env.db.engine)
    with env.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001_initial")
    names = set(inspect(env.db.engine).get_table_names())
    assert "report_version" not in names and "audit_entry" not in names and "study" in names


def test_concurrent_audit_writers_keep_one_chain(env):
    import threading

    errors = []

    def writer(name):
        try:
            for i in range(15):
                with env.db.session() as s:
                    audit.append(s, "view", name, "report_version", i, {"n": i})
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"u{k}",)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with env.db.session() as s:
        res = audit.verify_chain(s)
    assert res.ok and res.count == 45
