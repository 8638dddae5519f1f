"""`radstation engine draft|ask` as a script runs them: exit 3 and nothing produced for an out-of-scope file
or a refused question, a draft or a calibrated answer otherwise, and an audited override."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from sqlalchemy import select

from app.db.database import Database
from app.reports.models import AuditEntry
from engines.models.tiny import make_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "demo"
CARDIO = next((DEMO / "PT000001").rglob("IM*"))
PHANTOM_SLICE = sorted((DEMO / "PT000003").rglob("IM*"))[24]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("cli-tiny"), findings=("No Finding", "Cardiomegaly"))


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"RADSTATION_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, "-m", "app", "engine", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800)


def test_draft_stops_out_of_scope_files_and_overrides_on_request(tmp_path, tiny, monkeypatch) -> None:
    mr = get_testdata_file("MR_small.dcm")
    res = _run(tmp_path, "draft", str(PHANTOM_SLICE), mr, "--model", str(tiny), "--steps", "2")
    assert res.returncode == 3, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0] == f"{PHANTOM_SLICE}: out of scope: Modality CT (CT): the engine reads chest radiographs (CR/DX) only"
    assert lines[1].startswith(f"{mr}: out of scope: Modality MR") and len(lines) == 2  # nothing drafted
    res = _run(tmp_path, "draft", str(CARDIO), mr, "--model", str(tiny), "--steps", "2", "--override",
               "--user", "drcli", "--json")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.strip().splitlines()]
    assert [r["scope"]["in_scope"] for r in rows] == [True, False] and rows[1]["scope"]["override"]
    assert all(r["text"] for r in rows) and set(rows[0]["reading"]) == {"No Finding", "Cardiomegaly"}
    res = _run(tmp_path, "draft", str(tmp_path / "missing.dcm"), "--model", str(tiny))
    assert res.returncode == 2 and "cannot read: file not found" in res.stderr

    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))  # where the CLI's database is
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    db = Database.open()
    try:
        with db.session() as s:
            entries = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "ai_scope_override")))
        assert [(e.username, e.object_id) for e in entries] == [("drcli", mr)]
    finally:
        db.dispose()


def test_ask_refuses_gates_and_answers_with_a_probability(tmp_path, tiny) -> None:
    res = _run(tmp_path, "ask", str(CARDIO), "Is there a pacemaker?", "--model", str(tiny))
    assert res.returncode == 3 and res.stdout.startswith("refused: it asks about devices, lines and tubes")
    assert "I can say whether this frontal chest radiograph shows cardiomegaly" in res.stdout
    res = _run(tmp_path, "ask", str(PHANTOM_SLICE), "Is the heart enlarged?", "--model", str(tiny))
    assert res.returncode == 3 and res.stdout.startswith("out of scope: Modality CT")
    res = _run(tmp_path, "ask", str(CARDIO), "Is the heart enlarged?", "--model", str(tiny))
    assert res.returncode == 0, res.stderr
    answer, detail = res.stdout.split(" ", 1)
    assert answer in ("yes", "no", "uncertain") and detail.startswith("(probability of cardiomegaly ")
    assert "uncalibrated" in detail
