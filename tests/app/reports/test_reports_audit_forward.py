"""IHE ATNA forwarding to a real rsyslog over TLS, with the audit log as the durable queue."""

from __future__ import annotations

import time

import pytest

from app.reports.audit_forward import ForwardError, Repository, flush, pending
from app.reports.users import AuthError
from tests.support import rsyslog_fixture
from tests.support.reports_testing import PASSWORD, free_port


@pytest.fixture
def rsyslog(tmp_path):
    if not rsyslog_fixture.available():
        pytest.skip("rsyslogd with the gtls driver (Debian rsyslog, rsyslog-gnutls) is not installed")
    server = rsyslog_fixture.make(tmp_path / "rsyslog", free_port())
    yield server
    server.stop()


def _wait_for(server, n: int, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = server.lines()
        if len(lines) >= n:
            return lines
        time.sleep(0.1)
    return server.lines()


def test_audit_entries_reach_rsyslog_over_tls_and_queue_while_it_is_down(env, radiologist, rsyslog):
    repo = Repository(host="127.0.0.1", port=rsyslog.port, tls=True, ca_file=str(rsyslog.ca_file), timeout_s=5)
    with pytest.raises(AuthError):
        env.users.authenticate("ghost", PASSWORD)  # a failed login is an audit event too
    queued = pending(env.db)
    assert queued >= 5
    with pytest.raises(ForwardError):  # repository down: nothing lost, everything stays queued
        flush(env.db, repo)
    assert pending(env.db) == queued

    rsyslog.start()
    assert flush(env.db, repo) == queued and pending(env.db) == 0
    lines = _wait_for(rsyslog, queued)
    assert len(lines) == queued, lines
    assert all(ln.startswith("IHE+RFC-3881 [radstation@32473 seq=") for ln in lines)
    seqs = [int(ln.split('seq="')[1].split('"')[0]) for ln in lines]
    assert seqs == list(range(1, queued + 1))
    failed = [ln for ln in lines if '"action":"login_failed"' in ln.replace('\\"', '"')]
    assert failed and 'EventOutcomeIndicator="4"' in failed[0] and 'csd-code="110114"' in failed[0]
    assert 'UserID="ghost"' in failed[0]

    env.users.authenticate("rad", PASSWORD)  # only the new entry goes out next time
    assert flush(env.db, repo) == 1
    assert len(_wait_for(rsyslog, queued + 1)) == queued + 1


def test_untrusted_repository_certificate_is_refused(env, radiologist, rsyslog, tmp_path):
    rsyslog.start()
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(rsyslog_fixture._tls_files(tmp_path)[0].read_bytes())  # a CA that did not sign it
    repo = Repository(host="127.0.0.1", port=rsyslog.port, tls=True, ca_file=str(other_ca), timeout_s=5)
    with pytest.raises(ForwardError, match="TLS"):
        flush(env.db, repo)
    assert pending(env.db) > 0


def test_an_audit_entry_written_while_a_batch_is_read_and_sent_does_not_fail_the_forwarding(
        env, radiologist, rsyslog, monkeypatch):
    """Every access writes an audit entry, so one lands while the forwarder reads and sends a batch; moving the
    forwarded cursor must not then fail ("database is locked" on SQLite) and resend the batch next time."""
    import app.reports.audit_forward as audit_forward

    rsyslog.start()
    repo = Repository(host="127.0.0.1", port=rsyslog.port, tls=True, ca_file=str(rsyslog.ca_file), timeout_s=5)
    first = flush(env.db, repo)  # the cursor row exists from here on
    assert first >= 1
    env.users.authenticate("rad", PASSWORD)
    frame, written = audit_forward.syslog_frame, []

    def frame_while_someone_logs_in(entry, host):
        if not written:
            written.append(True)
            env.users.authenticate("rad", PASSWORD)  # another connection commits an audit entry now
        return frame(entry, host)

    monkeypatch.setattr(audit_forward, "syslog_frame", frame_while_someone_logs_in)
    assert flush(env.db, repo) == 2  # the entry of the batch read and the one written while it was read
    assert pending(env.db) == 0
    lines = _wait_for(rsyslog, first + 2)
    seqs = [int(ln.split('seq="')[1].split('"')[0]) for ln in lines]
    assert seqs == list(range(1, first + 3))  # each entry once, none resent
