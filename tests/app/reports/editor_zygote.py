"""Helper process for the kill -9 test (not a test module).

Imports the editor stack once, then for every `spawn ACKFILE` line on stdin forks one real editor
process and prints its pid. Each child runs the real ReportEditor offscreen on the given database, with a
driver timer typing the next characters of TEXT into Findings as key events; after every autosave that
the database committed it appends `ACK <saved length>` to ACKFILE with os.write (so the line is in the
kernel before the next instruction, and survives SIGKILL). Forking from a warmed-up parent keeps a restart
at ~0.1 s, so 50+ kills fit in well under a minute on two cores.
"""

from __future__ import annotations

import os
import signal
import sys

os.environ["QT_QPA_PLATFORM"] = "offscreen"

from argon2 import PasswordHasher, Type  # noqa: E402
from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtGui import QTextCursor  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

import app.reports.models  # noqa: E402,F401
from app.db.database import Database  # noqa: E402
from app.reports.service import ReportService  # noqa: E402
from app.reports.users import UserService  # noqa: E402
from app.widgets.report_editor import ReportEditor  # noqa: E402

SENTENCE = "Stable small left pleural effusion; no pneumothorax. Heart size normal, lines unchanged. "
TEXT = SENTENCE * 400
AUTOSAVE_MS = 100


def run_child(db_url: str, study_uid: str, username: str, password: str, ack_path: str) -> None:
    fd = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def say(line: str) -> None:
        os.write(fd, (line + "\n").encode())

    app = QApplication([])
    db = Database.open(db_url, migrate=False)
    users = UserService(db, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID))
    session = users.authenticate(username, password)
    editor = ReportEditor(db, study_uid, lambda: session, service=ReportService(db, users), autosave_ms=AUTOSAVE_MS)
    editor.show()
    edit = editor.editors["findings"]
    current = edit.toPlainText()
    say(f"READY {len(current)} {'ok' if TEXT.startswith(current) else 'MISMATCH'}")
    editor.autosaved.connect(lambda _rev: say(f"ACK {len(editor.version.content.get('findings'))}"))

    def type_more() -> None:
        pos = len(edit.toPlainText())
        if pos >= len(TEXT):
            return
        edit.moveCursor(QTextCursor.MoveOperation.End)
        QTest.keyClicks(edit, TEXT[pos:pos + 3])

    timer = QTimer()
    timer.timeout.connect(type_more)
    timer.start(5)
    app.exec()


def main() -> None:
    db_url, study_uid, username, password = sys.argv[1:5]
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed children are reaped by the kernel
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "quit":
            break
        if cmd != "spawn":
            continue
        pid = os.fork()
        if pid == 0:
            try:
                run_child(db_url, study_uid, username, password, arg)
            finally:
                os._exit(0)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
