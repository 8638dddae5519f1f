"""Helper process for the signing kill -9 test (not a test module).

Imports the signing stack once; for every `spawn ACKFILE` line on stdin forks a child that signs the
unsigned drafts of the database one after another (password check, key unlock, PDF + PAdES, DICOM-signed
SR and encapsulated PDF, one commit) and appends `SIGNED <version id>` to ACKFILE after each commit. The
parent test SIGKILLs the child at random moments.
"""

from __future__ import annotations

import os
import signal
import sys

from argon2 import PasswordHasher, Type
from sqlalchemy import select

import app.reports.models  # noqa: F401
from app.db.database import Database
from app.reports.artefacts import make_artefacts  # noqa: F401  (warm the imports before forking)
from app.reports.models import ReportVersion
from app.reports.service import ReportService
from app.reports.users import UserService


def run_child(db_url: str, username: str, password: str, ack_path: str) -> None:
    fd = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    db = Database.open(db_url, migrate=False)
    users = UserService(db, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID))
    service = ReportService(db, users)
    session = users.authenticate(username, password)
    os.write(fd, b"READY\n")
    while True:
        with db.session() as s:
            ids = list(s.scalars(select(ReportVersion.id).where(ReportVersion.status != "final")
                                 .order_by(ReportVersion.id)))
        if not ids:
            os.write(fd, b"DONE\n")
            return
        os.write(fd, f"SIGNING {ids[0]}\n".encode())
        service.sign(ids[0], session, password)
        os.write(fd, f"SIGNED {ids[0]}\n".encode())


def warm_up() -> None:
    """Import and load once here what every signature needs, so a forked signer starts signing at once."""
    import highdicom  # noqa: F401
    from pyhanko.sign import signers  # noqa: F401
    from pyhanko.sign.validation import validate_pdf_signature  # noqa: F401

    from app.reports import export_encapsulated, export_sr, verify_documents  # noqa: F401
    from app.reports.export_pdf import FONT_DIR, Letterhead, _covered

    _covered(FONT_DIR / "DejaVuSans.ttf")
    _covered(FONT_DIR / "DejaVuSans-Bold.ttf")
    Letterhead.load()


def main() -> None:
    db_url, username, password = sys.argv[1:4]
    warm_up()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed children are reaped at once (no zombies)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "quit":
            return
        if cmd == "spawn":
            pid = os.fork()
            if pid == 0:
                try:
                    run_child(db_url, username, password, arg)
                finally:
                    os._exit(0)
            print(pid, flush=True)


if __name__ == "__main__":
    main()
