"""Rolling the audit log back: cut the newest entries off and put back the head row (count, hash and its valid
keyed checkpoint) saved earlier. Every remaining entry still verifies; the workstation's high-water mark
outside the database does not."""

from __future__ import annotations

import io
import sys

from sqlalchemy import text

from app.reports import audit, audit_watermark
from app.reports.verify_documents import verify_version
from tests.support.reports_testing import PASSWORD, STUDY_UID, drop_trigger


def _head(env) -> dict:
    with env.db.engine.connect() as c:
        return dict(c.execute(text("select count, last_hash, mac from audit_head where id=1")).mappings().one())


def _roll_back(env, saved: dict) -> None:
    """The insider: remove what was logged after `saved` and put the saved head back."""
    with env.db.engine.begin() as c:
        for name in ("audit_entry_no_delete", "audit_head_forward_only"):
            drop_trigger(c, name)
        c.execute(text("delete from audit_entry where seq > :n"), {"n": saved["count"]})
        c.execute(text("update audit_head set count=:count, last_hash=:last_hash, mac=:mac where id=1"), saved)


def _verify(env):
    with env.db.session() as s:
        return audit.verify_chain(s)


def test_tail_cut_and_head_put_back_is_caught(env, radiologist, monkeypatch, capsys):
    v = env.service.open_or_create(STUDY_UID, radiologist)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": "Clear lungs."}, radiologist)
    signed = env.service.sign(v.id, radiologist, PASSWORD)
    saved = _head(env)
    env.service.record_export(signed.id, radiologist, "pdf", "/media/usb/report.pdf")  # what is to be hidden
    env.service.record_view(signed.id, radiologist)
    assert _verify(env).ok

    _roll_back(env, saved)
    mark = audit_watermark.watermark_path()
    hidden = mark.read_bytes()
    mark.unlink()  # without the mark, the rolled-back log is indistinguishable from an honest one
    assert _verify(env).ok, "the rollback should pass the keyed checkpoints alone"
    mark.write_bytes(hidden)

    res = _verify(env)
    assert not res.ok and res.first_broken_checkpoint == saved["count"] + 1, res.summary()
    assert "cut off the end" in res.summary()
    assert not verify_version(env.db, signed.id).ok  # nothing rests on a log that fails its check

    from app.cli import main

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code = main(["audit", "verify", "--db", str(env.db.engine.url)])
    out = capsys.readouterr().out
    assert code == 1 and f"seq={saved['count'] + 1}" in out, out


def test_new_entries_after_a_rollback_do_not_bury_it(env, radiologist):
    """After the rollback the workstation keeps working; its new entries (same seq numbers, other hashes) must
    not move the mark past the evidence."""
    saved = _head(env)
    env.service.open_or_create(STUDY_UID, radiologist)  # draft + view entries
    _roll_back(env, saved)
    for _ in range(4):  # more entries than were removed
        env.users.authenticate("rad", PASSWORD)
    res = _verify(env)
    assert not res.ok and "not the one this workstation saw" in res.summary(), res.summary()


def test_honest_log_and_a_second_database_verify(env, radiologist, tmp_path):
    """The mark never raises a false alarm: an honest log verifies, and another database used from the same
    workstation has its own mark."""
    from app.db.database import Database
    from tests.support.reports_testing import add_study

    env.service.open_or_create(STUDY_UID, radiologist)
    assert _verify(env).ok
    other = Database.open(f"sqlite:///{tmp_path / 'other.db'}", store_dir=tmp_path / "store2")
    try:
        add_study(other)
        from app.reports.users import UserService
        from tests.support.reports_testing import FAST_HASHER

        UserService(other, hasher=FAST_HASHER).add_user("solo", PASSWORD, "admin")
        with other.session() as s:
            assert audit.verify_chain(s).ok
    finally:
        other.dispose()
    assert _verify(env).ok
