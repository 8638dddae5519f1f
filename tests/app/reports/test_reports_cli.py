"""The `radstation` subcommands for users, certificates, verify, audit verify and export."""

from __future__ import annotations

import io
import sys

from sqlalchemy import text

from app.cli import main
from tests.support.reports_testing import PASSWORD, STUDY_UID, add_study


def run(monkeypatch, capsys, argv, stdin=""):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_cli_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("RADSTATION_DB_URL", url)
    code, out = run(monkeypatch, capsys, ["user", "add", "root", "--role", "admin", "--password-stdin"],
                    PASSWORD + "\n")
    assert code == 0, out  # bootstrap: the first account needs no credentials
    code, out = run(monkeypatch, capsys, ["user", "add", "mallory", "--role", "admin", "--password-stdin"],
                    PASSWORD + "\n")
    assert code == 1 and "admin" in out  # ...but every later one does
    code, out = run(monkeypatch, capsys, ["user", "add", "jdoe", "--role", "radiologist", "--name", "Dr Jane Doe",
                                          "--admin", "root", "--password-stdin"], f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 0, out
    code, out = run(monkeypatch, capsys, ["user", "add", "jdoe", "--role", "resident", "--admin", "root",
                                          "--password-stdin"], f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 1 and "already exists" in out
    code, out = run(monkeypatch, capsys, ["cert", "create", "jdoe", "--password-stdin"], PASSWORD + "\n")
    assert code == 1 and "admin" in out  # an admin exists: they must register the key
    code, out = run(monkeypatch, capsys, ["cert", "create", "jdoe", "--admin", "root", "--password-stdin"],
                    f"{PASSWORD}\nwrong-password\n")
    assert code == 1
    code, out = run(monkeypatch, capsys, ["cert", "create", "root", "--admin", "root", "--password-stdin"],
                    f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 1 and "signing certificates" in out  # admins get no signing keys
    code, out = run(monkeypatch, capsys, ["cert", "create", "jdoe", "--admin", "root", "--password-stdin"],
                    f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 0 and "fingerprint" in out, out
    code, out = run(monkeypatch, capsys, ["user", "list"])
    assert "jdoe" in out and "certificate" in out

    from app.db.database import Database
    from app.reports.service import ReportService
    from app.reports.users import UserService

    db = Database.open(url)
    add_study(db)
    users = UserService(db)
    service = ReportService(db, users)
    me = users.authenticate("jdoe", PASSWORD)
    v = service.open_or_create(STUDY_UID, me)
    service.save_draft(v.id, {**v.content.to_dict(), "findings": "Lungs: clear. Heart: normal size."}, me)
    service.sign(v.id, me, PASSWORD)

    files = {}
    for fmt, name in (("sr", "r.dcm"), ("pdf", "r.pdf"), ("pdf-dicom", "p.dcm"), ("text", "r.txt"),
                      ("fhir", "r.json")):
        files[fmt] = tmp_path / name
        code, out = run(monkeypatch, capsys, ["report", "export", "--version", str(v.id), "--format", fmt,
                                              "--out", str(files[fmt])])
        assert code == 0, out
    code, out = run(monkeypatch, capsys, ["verify", str(files["sr"]), str(files["pdf"]), str(files["pdf-dicom"]),
                                          "--report", str(v.report_id)])
    assert code == 0 and out.count("VALID") == 4, out
    code, out = run(monkeypatch, capsys, ["audit", "verify"])
    assert code == 0 and "intact" in out

    raw = files["sr"].read_bytes()
    i = raw.index(b"Lungs: clear")
    files["sr"].write_bytes(raw[:i] + b"L" + b"u".upper() + raw[i + 2:])
    code, out = run(monkeypatch, capsys, ["verify", str(files["sr"])])
    assert code == 1 and "TAMPERED" in out and "findings" in out

    with db.engine.begin() as c:
        c.execute(text("drop trigger audit_entry_no_update"))
        c.execute(text("update audit_entry set username='mallory' where seq=2"))
    code, out = run(monkeypatch, capsys, ["audit", "verify"])
    assert code == 1 and "seq=2" in out, out
    db.dispose()
