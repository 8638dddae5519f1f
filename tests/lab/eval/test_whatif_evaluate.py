from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

from lab.eval.whatif import build_cases, main, markdown, moved, success_interval, summarise


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
    rows = [dict(kind="remove", finding="Edema", success=s, success_decoded=not s, p_edit=0.2, p_control=0.4,
                 ssim_outside=0.9, ssim_inside=0.5, mad_outside=1.0, mad_inside=9.0, region_share=0.15)
            for s in (True, True, False)]
    (s,) = summarise(rows)
    assert s["n"] == 3 and s["success"] == pytest.approx(2 / 3) and s["delta_p"] == pytest.approx(-0.2)
    # Wilson 95% interval of 2 of 3: wide, and it contains one half.
    assert s["success_low"] == pytest.approx(0.208, abs=1e-3) and s["success_high"] == pytest.approx(0.939, abs=1e-3)
    table = markdown([s], {"Edema": 0.8})
    assert s["success_decoded"] == pytest.approx(1 / 3)
    assert "| remove | Edema | 3 | 0.67 (0.21-0.94) | 0.33 | -0.200 |" in table and "0.800" in table


def test_success_interval_narrows_with_cases() -> None:
    lo3, hi3 = success_interval(2, 3)
    lo30, hi30 = success_interval(20, 30)
    assert lo3 < lo30 < 2 / 3 < hi30 < hi3
    assert success_interval(0, 4)[0] == 0.0 and success_interval(4, 4)[1] == 1.0


def test_cli_runs_end_to_end_on_a_slice(cxr_root: Path, tmp_path: Path, tiny_pipeline,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from lab.data import load_cxr
    from lab.eval.finding_classifier import train_on_splits

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
    for r in data["rows"]:  # the shown image and the decoded one are both judged
        assert r["success"] == moved(r["kind"], r["p_edit"], r["p_control"])
        assert r["success_decoded"] == moved(r["kind"], r["p_edit_decoded"], r["p_control_decoded"])
        assert 0 <= r["decoded_ssim_outside"] <= 1
    assert "overall success (decoded images only)" in text


def test_cli_rejects_train_split_and_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--split", "train"])
    assert main(["--model", str(tmp_path / "nope"), "--limit", "1"]) == 2
    assert "cannot load the model" in capsys.readouterr().err


def test_ceiling_compares_the_judge_on_originals_and_reconstructions(cxr_root: Path, tmp_path: Path, tiny_pipeline,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A judge that sees brightness separates bright from dark originals; on the reconstructions it is judged
    on what the VQ decodes (the model's own image space), positives' mean probability beside each."""
    from lab.eval.finding_classifier import train_classifier
    from lab.eval.whatif_ceiling import reconstruction_ceiling

    @dataclass
    class _Img:
        image: np.ndarray
        findings: dict[str, int]

        def load_image(self) -> np.ndarray:
            return self.image

    rng = np.random.default_rng(0)
    samples = [_Img((rng.random((32, 32)) * 0.3 + (0.6 if k % 2 else 0.0)).astype(np.float32),
                    {"Lung Opacity": k % 2}) for k in range(20)]
    judge = train_classifier([s.image for s in samples], [s.findings for s in samples], min_positives=5, dim=4)
    c = reconstruction_ceiling(tiny_pipeline, judge, samples)["Lung Opacity"]
    from sklearn.metrics import roc_auc_score

    from engines.pipeline import prepare_image

    y = np.array([s.findings["Lung Opacity"] for s in samples])
    ims = [prepare_image((s.image * 255).round().astype(np.uint8), tiny_pipeline.image_size) for s in samples]
    p_rec = judge.predict([tiny_pipeline.decode_tokens(tiny_pipeline.encode_image(im)) for im in ims])[:, 0]
    assert c["auroc_original"] > 0.95
    assert c["auroc_reconstruction"] == pytest.approx(roc_auc_score(y, p_rec))
    assert c["p_reconstruction"] == pytest.approx(p_rec[y == 1].mean())
    with pytest.raises(ValueError, match="no images"):
        reconstruction_ceiling(tiny_pipeline, judge, [])
    # The CLI flag prints the table and stops before any case is run.
    from lab.data import load_cxr
    from lab.eval.finding_classifier import train_on_splits

    train = [s for s in load_cxr(cxr_root, splits=("train",)).by_split("train")][:12]
    train = [replace(s, findings={"Lung Opacity": k % 2}) for k, s in enumerate(train)]
    clf_path = train_on_splits(train, train, min_positives=1, dim=4).save(tmp_path / "clf.npz")
    out = tmp_path / "ceiling.json"
    assert main(["--ceiling", "--model", str(tiny_pipeline.path), "--classifier", str(clf_path),
                 "--root", str(cxr_root), "--json", str(out)]) == 0
    assert "judge AUROC, VQ reconstructions" in capsys.readouterr().out
    assert "ceiling" in json.loads(out.read_text())
