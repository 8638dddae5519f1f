from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from engines.counterfactual.evaluate import build_cases, main, markdown, success_interval, summarise


@dataclass
class _S:
    image_id: str
    findings: dict[str, int] = field(default_factory=dict)


def test_cases_are_round_robin_over_edit_types() -> None:
    samples = ([_S(f"n{k}", {"No Finding": 1}) for k in range(6)]
               + [_S(f"o{k}", {"Lung Opacity": 1}) for k in range(6)]
               + [_S("e0", {"Lung Opacity": 1, "Pleural Effusion": 1})])
    cases = build_cases(samples, ["Lung Opacity", "Pleural Effusion", "Cardiomegaly"], limit=5)
    kinds = [(k, f) for _, k, f in cases]
    assert len(cases) == 5
    assert ("remove", "Pleural Effusion") in kinds  # the rarer positive is the one removed
    assert ("add", "Pleural Effusion") in kinds and ("add", "Cardiomegaly") in kinds
    assert ("remove", "Lung Opacity") in kinds


def test_summary_and_table() -> None:
    rows = [dict(kind="remove", finding="Edema", success=s, p_edit=0.2, p_control=0.4, ssim_outside=0.9,
                 ssim_inside=0.5, mad_outside=1.0, mad_inside=9.0, region_share=0.15) for s in (True, True, False)]
    (s,) = summarise(rows)
    assert s["n"] == 3 and s["success"] == pytest.approx(2 / 3) and s["delta_p"] == pytest.approx(-0.2)
    # Wilson 95% interval of 2 of 3: wide, and it contains one half.
    assert s["success_low"] == pytest.approx(0.208, abs=1e-3) and s["success_high"] == pytest.approx(0.939, abs=1e-3)
    table = markdown([s], {"Edema": 0.8})
    assert "| remove | Edema | 3 | 0.67 (0.21-0.94) | -0.200 |" in table and "0.800" in table


def test_success_interval_narrows_with_cases() -> None:
    lo3, hi3 = success_interval(2, 3)
    lo30, hi30 = success_interval(20, 30)
    assert lo3 < lo30 < 2 / 3 < hi30 < hi3
    assert success_interval(0, 4)[0] == 0.0 and success_interval(4, 4)[1] == 1.0


def test_cli_runs_end_to_end_on_a_slice(cxr_root: Path, tmp_path: Path, tiny_pipeline,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from engines.data import load_cxr
    from engines.eval.finding_classifier import train_on_splits

    ds = load_cxr(cxr_root, splits=("train", "val"))
    train = [s for s in ds.by_split("train") if s.findings.get("No Finding") == 1][:6] + \
        [s for s in ds.by_split("train") if s.findings.get("Lung Opacity") == 1][:6]
    train = [replace(s, findings={"Lung Opacity": s.findings.get("Lung Opacity", 0)}) for s in train]
    clf = train_on_splits(train, train, min_positives=1, dim=8)
    clf_path = clf.save(tmp_path / "clf.npz")
    out = tmp_path / "rows.json"
    rc = main(["--split", "val", "--limit", "2", "--steps", "2", "--model", str(tiny_pipeline.path),
               "--classifier", str(clf_path), "--root", str(cxr_root), "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| edit | finding |" in text and "Lung Opacity" in text
    data = json.loads(out.read_text())
    assert len(data["rows"]) == 2 and {r["kind"] for r in data["rows"]} == {"add", "remove"}


def test_cli_rejects_train_split_and_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--split", "train"])
    assert main(["--model", str(tmp_path / "nope"), "--limit", "1"]) == 2
    assert "cannot load the model" in capsys.readouterr().err
