"""Paired comparison of what-if runs: discordant pairs, the sign test and pooling across draws."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.eval.whatif_compare import compare, main, paired, sign_test


def _run(path: Path, successes: list[bool], finding: str = "Edema") -> Path:
    rows = [{"image_id": f"i{k}", "kind": "remove", "finding": finding, "success": s} for k, s in enumerate(successes)]
    path.write_text(json.dumps({"rows": rows}))
    return path


def test_discordant_pairs_and_sign_test() -> None:
    base = {("a", "remove", "Edema"): False, ("b", "remove", "Edema"): True, ("c", "remove", "Edema"): False}
    new = {("a", "remove", "Edema"): True, ("b", "remove", "Edema"): True, ("c", "remove", "Edema"): True,
           ("z", "add", "Edema"): True}
    r = compare(paired(base, new))
    assert r["n"] == 3 and r["better"] == 2 and r["worse"] == 0
    assert r["base"] == pytest.approx(1 / 3) and r["new"] == 1.0
    assert r["types"]["remove Edema"] == {"n": 3, "base": pytest.approx(1 / 3), "new": 1.0}
    assert r["majority_base"] == 0 and r["majority_new"] == 1
    assert sign_test(40, 23) == pytest.approx(0.0428, abs=1e-3)  # exact binomial, two-sided
    assert sign_test(0, 0) == 1.0 and sign_test(5, 5) == 1.0


def test_cli_pools_draws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = [_run(tmp_path / "b0.json", [False] * 6 + [True] * 2), _run(tmp_path / "n0.json", [True] * 7 + [False]),
            _run(tmp_path / "b1.json", [False] * 8), _run(tmp_path / "n1.json", [True] * 8)]
    assert main([str(p) for p in runs]) == 0
    out = capsys.readouterr().out
    assert "pooled: 16 cases, 0.12 -> 0.94" in out and "| remove Edema | 16 | 0.12 | 0.94 |" in out
    with pytest.raises(SystemExit):
        main([str(runs[0])])
    assert main([str(runs[0]), str(tmp_path / "missing.json")]) == 2


def test_cli_compares_two_fields_of_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"image_id": f"i{k}", "kind": "remove", "finding": "Edema", "success": k < 3, "success_decoded": k < 1}
            for k in range(4)]
    run = tmp_path / "r.json"
    run.write_text(json.dumps({"rows": rows}))
    assert main(["--base-field", "success_decoded", str(run), str(run)]) == 0
    assert "4 cases, 0.25 -> 0.75, 2 better / 0 worse" in capsys.readouterr().out
    assert main(["--new-field", "nope", str(run), str(run)]) == 2
