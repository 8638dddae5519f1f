"""The running workstation forwards its audit log to a real rsyslog (IHE ATNA over TLS) on its own: every tick
and after sign-off, off the GUI thread; while the repository is down the entries stay queued and go out on
a later tick."""

from __future__ import annotations

from test_reports_audit_forward import _wait_for, rsyslog  # noqa: F401 - the rsyslog fixture

from app.audit_forwarder import AuditForwarder
from app.reports.audit_forward import pending
from app.settings import Settings
from tests.support.reports_testing import PASSWORD


def _configure(server) -> None:
    settings = Settings()
    settings.set("audit_repository", {"host": "127.0.0.1", "port": server.port, "tls": True,
                                      "ca_file": str(server.ca_file), "timeout_s": 5})
    settings.save()


def test_forwarder_delivers_on_its_timer_and_keeps_entries_while_the_repository_is_down(qtbot, env, radiologist,
                                                                                       rsyslog):  # noqa: F811
    forwarder = AuditForwarder(env.db, interval_ms=300)
    assert not forwarder.forward_now()  # no audit_repository setting: nothing is sent anywhere
    _configure(rsyslog)
    queued = pending(env.db)
    assert queued >= 3
    with qtbot.waitSignal(forwarder.failed, timeout=30000):  # repository down
        forwarder.start()
    assert pending(env.db) == queued and forwarder.last_error

    rsyslog.start()
    qtbot.waitUntil(lambda: pending(env.db) == 0, timeout=60000)  # a later tick delivers, nothing lost
    lines = _wait_for(rsyslog, queued)
    assert len(lines) == queued, lines

    env.users.authenticate("rad", PASSWORD)  # a new event goes out on the next tick by itself
    qtbot.waitUntil(lambda: pending(env.db) == 0, timeout=60000)
    assert len(_wait_for(rsyslog, queued + 1)) == queued + 1
    forwarder.close()
