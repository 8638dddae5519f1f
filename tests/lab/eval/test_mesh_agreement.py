"""The MeSH agreement measurement on a handful of reports with known tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.data.iu import IUReport
from lab.eval.labeler_agreement import NO_FINDING_CHEXPERT, main, measure


def _rep(uid: str, text: str, mesh: list[str]) -> IUReport:
    return IUReport(uid=uid, findings=text, impression="", mesh_major=mesh)


REPORTS = [
    _rep("1", "Mild cardiomegaly. No effusion.", ["Cardiomegaly/mild"]),
    _rep("2", "Small right pleural effusion.", ["Pleural Effusion/right/small"]),
    _rep("3", "Heart size is normal. Lungs are clear.", ["normal"]),
    _rep("4", "Possible small left effusion.", ["Cardiomegaly"]),  # labeler: effusion uncertain, no cardiomegaly
    _rep("5", "Calcified granuloma.", ["Calcified Granuloma/lung"]),
    _rep("6", "Anything.", ["No Indexing"]),
]


def test_measure_counts() -> None:
    r = measure(REPORTS)
    assert r["reports"] == 5  # "No Indexing" left out
    rows = {row["finding"]: row for row in r["rows"]}
    card = rows["Cardiomegaly"]
    assert (card["tagged"], card["predicted"]) == (2, 1) and card["precision"] == 1.0 and card["recall"] == 0.5
    eff = rows["Pleural Effusion"]
    # report 4: uncertain counts as predicted in the main columns, not in the strict one
    assert (eff["tagged"], eff["predicted"], eff["precision"]) == (1, 2, 0.5)
    assert eff["f1_strict"] == pytest.approx(1.0)
    nf = rows["No Finding"]
    assert (nf["tagged"], nf["predicted"]) == (1, 2)  # report 5 is "No Finding" for CheXpert, not MeSH-normal
    assert rows[NO_FINDING_CHEXPERT]["precision"] == 1.0 and rows[NO_FINDING_CHEXPERT]["tagged"] == 2
    assert "Fracture" not in rows  # never tagged: not scored


def test_command_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"uid": r.uid, "findings": r.findings, "impression": "",
                                        "mesh_major": r.mesh_major}) + "\n" for r in REPORTS))
    assert main(["--reports", str(path), "--json", str(tmp_path / "a.json")]) == 0
    assert "| Cardiomegaly | 2 | 1 |" in capsys.readouterr().out
    assert json.loads((tmp_path / "a.json").read_text())["reports"] == 5
    assert main(["--reports", str(tmp_path / "missing.jsonl")]) == 2
