"""The visible outbox: every queued report document with its state, attempts and last error.

Sending runs in a worker thread (a PACS can take seconds or time out); the table refreshes from the
database, which is the only source of truth: an item shows 'sent' only after the peer confirmed it.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.reports.outbox import Outbox
from viewer.widgets.background import BackgroundRunner, Job

STATE_COLOURS = {"queued": "#1b3a66", "sending": "#6a4c00", "retry": "#b26a00", "sent": "#2e7d32",
                 "failed": "#b3261e"}
COLUMNS = ("#", "Document", "Destination", "State", "Attempts", "Last error", "Sent at")


class OutboxWidget(QWidget):
    changed = Signal()

    def __init__(self, outbox: Outbox, parent: QWidget | None = None, auto_send_ms: int = 15000) -> None:
        super().__init__(parent)
        self.outbox = outbox
        self._runner = BackgroundRunner(self)
        self._thread: Job | None = None
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.status = QLabel()
        self.send_button = QPushButton("Send now")
        self.retry_button = QPushButton("Retry selected")
        self.send_button.clicked.connect(self.send_due)
        self.retry_button.clicked.connect(self.retry_selected)
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.retry_button)
        row.addWidget(self.send_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table, 1)
        lay.addLayout(row)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.send_due)
        if auto_send_ms > 0:
            self._timer.start(auto_send_ms)
        self.outbox.recover()
        self.refresh()

    def refresh(self) -> None:
        rows = self.outbox.items()
        self.table.setRowCount(len(rows))
        for r, item in enumerate(rows):
            values = (str(item.id), item.document.upper(), f"{item.destination} ({item.protocol})", item.state,
                      f"{item.attempts}/{item.max_attempts}", item.last_error,
                      item.sent_at.astimezone().strftime("%d %b %H:%M:%S") if item.sent_at else "")
            for c, v in enumerate(values):
                cell = QTableWidgetItem(v)
                if c == 3:
                    cell.setForeground(QColor(STATE_COLOURS.get(item.state, "#333")))
                if c == 5:
                    cell.setToolTip(v)
                self.table.setItem(r, c, cell)
        pending = sum(1 for i in rows if i.state not in ("sent", "failed"))
        failed = sum(1 for i in rows if i.state == "failed")
        self.status.setText(f"{pending} waiting, {failed} failed, {len(rows) - pending - failed} sent")
        self.changed.emit()

    def send_due(self) -> None:
        if self._thread is not None:
            return
        outbox = self.outbox
        self.send_button.setEnabled(False)
        self._thread = self._runner.start(lambda job: outbox.process_due(cancelled=job.cancelled),
                                          on_done=self._done, on_error=self._failed)

    def _done(self, _sent: int) -> None:
        self._end_thread()
        self.refresh()

    def _failed(self, exc: BaseException) -> None:  # shown in the widget, the queue stays intact
        self._end_thread()
        self.refresh()
        self.status.setText(f"Sending stopped: {exc}")

    def _end_thread(self) -> None:
        self._thread = None
        self.send_button.setEnabled(True)

    def retry_selected(self) -> None:
        for idx in self.table.selectionModel().selectedRows():
            self.outbox.retry_now(int(self.table.item(idx.row(), 0).text()))
        self.refresh()
        self.send_due()

    def wait_idle(self) -> None:
        """Block until a running send finishes (for shutdown and tests)."""
        self._runner.wait()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._runner.cancel_all()
        self._runner.wait()
        super().closeEvent(event)
