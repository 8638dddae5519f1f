"""`radstation outbox list | add | send | retry` against a real Orthanc and an unreachable peer."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import access_audit
from app.cli import main
from app.reports.models import AuditEntry
from tests.support.reports_testing import PASSWORD, STUDY_UID, free_port


def _signed(env, user):
    v = env.service.open_or_create(STUDY_UID, user)
    env.service.save_draft(v.id, {**v.content.to_dict(), "findings": "Sent from the command line."}, user)
    return env.service.sign(v.id, user, PASSWORD)


@pytest.fixture
def clean_orthanc(orthanc):
    """An empty PACS, emptied again afterwards: report UIDs derive from (study, report, version), so a later
    test's SR would otherwise meet this one's in the shared Orthanc."""
    orthanc.clear()
    yield orthanc
    orthanc.clear()


@pytest.mark.orthanc
def test_outbox_cli_queues_sends_and_lists_states(env, radiologist, clean_orthanc, tmp_path, capsys):
    orthanc = clean_orthanc
    url = env.db.engine.url.render_as_string(hide_password=False)  # the database the report lives in
    v = _signed(env, radiologist)
    assert main(["pacs", "add-node", "orthanc", "--ae", orthanc.aet, "--host", "127.0.0.1",
                 "--port", str(orthanc.dicom_port), "--calling-ae", "RADCLI"]) == 0
    assert main(["outbox", "--db-url", url, "add", str(v.id), "--to", "orthanc"]) == 0
    assert "queued 3 item(s)" in capsys.readouterr().out  # SR, PDF and the key-image KOS
    assert main(["outbox", "--db-url", url, "list"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("queued") == 3 and "kos" in listing and "pdf" in listing
    assert main(["outbox", "--db-url", url, "send"]) == 0
    out = capsys.readouterr().out
    assert "3 sent, 0 not sent" in out
    assert orthanc.instance_count() == 3
    assert main(["outbox", "--db-url", url, "list", "--json"]) == 0
    assert capsys.readouterr().out.count('"state": "sent"') == 3


def test_outbox_cli_failures_retries_and_bad_input(env, radiologist, tmp_path, capsys):
    url = env.db.engine.url.render_as_string(hide_password=False)  # the database the report lives in
    v = _signed(env, radiologist)
    assert main(["pacs", "add-node", "dead", "--ae", "NOBODY", "--host", "127.0.0.1", "--port", str(free_port()),
                 "--timeout", "2"]) == 0
    assert main(["outbox", "--db-url", url, "add", str(v.id), "--to", "dead", "--documents", "sr",
                 "--max-attempts", "2"]) == 0
    capsys.readouterr()
    with env.db.session() as s:  # queued from the command line: the OS user sent it (was 'console')
        senders = {e.username for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "send"))}
    assert senders == {access_audit.actor()} and "console" not in senders
    assert main(["outbox", "--db-url", url, "send"]) == 1
    out = capsys.readouterr().out
    assert "retry" in out and "0 sent, 1 not sent" in out
    assert main(["outbox", "--db-url", url, "send"]) == 0  # not due yet (back-off): nothing tried
    assert main(["outbox", "--db-url", url, "send", "--now"]) == 1
    assert "failed" in capsys.readouterr().out
    assert main(["outbox", "--db-url", url, "retry", "--failed"]) == 0
    assert "1 item(s) queued" in capsys.readouterr().out
    assert main(["outbox", "--db-url", url, "list", "--pending"]) == 0
    assert " retry " in capsys.readouterr().out
    assert main(["outbox", "--db-url", url, "add", str(v.id), "--to", "dead", "--documents", "sr,fax"]) == 2
    assert "unknown document(s) fax" in capsys.readouterr().err
    assert main(["outbox", "--db-url", url, "add", str(v.id), "--to", "nowhere"]) == 2
    assert main(["outbox", "--db-url", url, "retry"]) == 2
