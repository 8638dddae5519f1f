"""Kill -9 loop: a real editor process types into Findings and is SIGKILLed at random moments, 50+ times.

After every kill, the database must hold every acknowledged (autosave-committed) character, the text must
be a prefix of what was typed (nothing garbled), and the next start must offer exactly that draft.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from app.db.database import Database
from app.reports.service import ReportService
from app.reports.users import UserService
from tests.support.reports_testing import PASSWORD, STUDY_UID, add_study

KILLS = 55
HERE = Path(__file__).resolve().parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stored_findings(db_path: Path) -> str:
    con = sqlite3.connect(db_path)
    try:
        raw = con.execute("select sections from report_version order by id desc limit 1").fetchone()[0]
    finally:
        con.close()
    return json.loads(raw).get("findings", "")


def test_kill9_loop_loses_no_acknowledged_text(tmp_path, monkeypatch):
    from tests.support.reports_testing import FAST_HASHER

    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    db_path = tmp_path / "kill.db"
    url = f"sqlite:///{db_path}"
    db = Database.open(url)
    add_study(db)
    users = UserService(db, hasher=FAST_HASHER)
    users.add_user("typist", PASSWORD, "resident")
    service = ReportService(db, users)
    me = users.authenticate("typist", PASSWORD)
    v = service.open_or_create(STUDY_UID, me)
    service.save_draft(v.id, {**v.content.to_dict(), "findings": ""}, me)
    db.dispose()

    from tests.app.reports.editor_zygote import TEXT

    log = (tmp_path / "editors.log").open("w")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(HERE.parents[2]))
    zygote = subprocess.Popen([sys.executable, str(HERE / "editor_zygote.py"), url, STUDY_UID, "typist", PASSWORD],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    rng = random.Random(20261123)
    previous = ""
    acked_rounds = 0
    started = time.monotonic()
    try:
        for k in range(KILLS):
            ack = tmp_path / f"ack{k}.txt"
            zygote.stdin.write(f"spawn {ack}\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            deadline = time.monotonic() + 20
            while not (ack.exists() and ack.read_text().startswith("READY")):
                assert time.monotonic() < deadline and _alive(pid), f"editor {k} did not start"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.02, 0.45))
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.005)
            lines = ack.read_text().splitlines()
            ready = lines[0].split()
            assert ready[2] == "ok", f"round {k}: reopened text is not a prefix of what was typed"
            assert int(ready[1]) == len(previous), f"round {k}: reopening did not offer the saved draft"
            acks = [int(ln.split()[1]) for ln in lines[1:] if ln.startswith("ACK ")]
            stored = _stored_findings(db_path)
            assert TEXT.startswith(stored), f"round {k}: stored text is garbled"
            if acks:
                acked_rounds += 1
                assert len(stored) >= acks[-1], f"round {k}: lost acknowledged text ({len(stored)} < {acks[-1]})"
            assert len(stored) >= len(previous)
            previous = stored
    finally:
        zygote.stdin.write("quit\n")
        zygote.stdin.flush()
        zygote.wait(10)
        log.close()
    elapsed = time.monotonic() - started
    print(f"{KILLS} kills in {elapsed:.1f} s; {acked_rounds} rounds with acknowledged saves; "
          f"{len(previous)} characters survived")
    assert acked_rounds >= KILLS // 3 and len(previous) > 200
