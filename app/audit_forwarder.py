"""Forwards the audit log to the site's audit repository (IHE ATNA) while the workstation runs.

Every `interval_ms`, and right after a sign-off, the entries not yet delivered go out on a worker thread
(app.reports.audit_forward.flush), so the GUI never waits on the network. When the repository is down the
entries stay queued in the audit log itself and go out on a later tick; nothing is lost. Nothing happens
until the `audit_repository` setting names a host. `radstation audit forward` does the same from a timer.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, QTimer, Signal


class AuditForwarder(QObject):
    forwarded = Signal(int)  # entries delivered by one run (> 0)
    failed = Signal(str)  # why a run could not deliver (the entries stay queued)

    def __init__(self, database, interval_ms: int = 30_000, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.database = database
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.last_error = ""
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.forward_now)

    def start(self) -> None:
        self._timer.start()
        self.forward_now()

    def forward_now(self) -> bool:
        """Start one run unless one is in flight or no repository is configured; True when started."""
        from app.reports.audit_forward import Repository
        from app.settings import SettingsError

        try:
            repo = Repository.from_settings()
        except (TypeError, ValueError, SettingsError) as exc:
            self._report(f"the audit_repository setting is invalid: {exc}")
            return False
        if repo is None:
            return False
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._thread = threading.Thread(target=self._run, args=(repo,), name="audit-forward", daemon=True)
            self._thread.start()
        return True

    def _run(self, repo) -> None:
        from app.reports.audit_forward import flush

        try:
            sent = flush(self.database, repo)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the entries queued; it is reported
            self._report(str(exc) or type(exc).__name__)
            return
        self.last_error = ""
        if sent:
            self.forwarded.emit(sent)

    def _report(self, message: str) -> None:
        self.last_error = message
        self.failed.emit(message)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the timer and wait for a run in flight (its socket times out by itself)."""
        self._timer.stop()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
