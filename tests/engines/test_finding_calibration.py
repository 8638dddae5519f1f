"""Calibration: ECE and reliability against hand-computed values, fitting that actually fixes a miscalibrated
score, the uncertain band, and the shipped file format (broken files are errors, not silent identity)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engines.calibration import FILE_NAME, Calibration, FindingCalibration
from lab.eval.calibration import (
    ece,
    fit_calibration,
    fit_finding,
    out_of_fold,
    reliability,
    reliability_figure,
)


def test_ece_and_reliability_match_a_hand_computation() -> None:
    p = np.array([0.05, 0.15, 0.15, 0.85, 0.95, 0.95])
    y = np.array([0, 0, 1, 1, 1, 1])
    bins = reliability(p, y, bins=10)
    assert [(b.count, round(b.positive_rate, 3)) for b in bins] == [(1, 0.0), (2, 0.5), (1, 1.0), (2, 1.0)]
    # |0.05-0|*1 + |0.15-0.5|*2 + |0.85-1|*1 + |0.95-1|*2, over 6
    assert ece(p, y, bins=10) == pytest.approx((0.05 + 0.7 + 0.15 + 0.1) / 6)
    with pytest.raises(ValueError):
        ece(p, y[:3])


@pytest.mark.parametrize("method", ["platt", "temperature", "isotonic"])
def test_fitting_repairs_an_overconfident_score(method) -> None:
    rng = np.random.default_rng(0)
    true_p = rng.uniform(0.05, 0.95, 4000)
    y = (rng.random(4000) < true_p).astype(int)
    z = np.log(true_p / (1 - true_p)) * 3.0  # three times too confident
    raw = 1 / (1 + np.exp(-z))
    cal = out_of_fold(raw, y, method)
    assert ece(raw, y) > 0.1 and ece(cal, y) < 0.04
    f = fit_finding(raw, y, method)
    assert np.all(np.diff(f(np.linspace(0.01, 0.99, 50))) >= -1e-9)  # monotone: ranking (AUROC) unchanged


def test_band_answers_and_file_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(1)
    probs = {"Cardiomegaly": rng.random(200), "Pneumothorax": rng.random(200)}
    labels = {"Cardiomegaly": (rng.random(200) < 0.3).astype(int), "Pneumothorax": np.zeros(200, int)}
    cal = fit_calibration(probs, labels, "platt", band=(0.3, 0.7), info={"fitted_on": {"split": "val"}})
    assert cal.is_calibrated("Cardiomegaly") and not cal.is_calibrated("Pneumothorax")  # no positives: left raw
    assert cal.apply({"Pneumothorax": 0.42})["Pneumothorax"] == 0.42
    assert [cal.answer(p) for p in (0.1, 0.3, 0.5, 0.7, 0.9)] == ["no", "no", "uncertain", "yes", "yes"]
    cal.save(tmp_path)
    again = Calibration.load(tmp_path)
    assert again.band == (0.3, 0.7) and again.info["fitted_on"] == {"split": "val"}
    assert again.apply({"Cardiomegaly": 0.6}) == pytest.approx(cal.apply({"Cardiomegaly": 0.6}))
    assert Calibration.load(tmp_path / "none").findings == {}  # nothing shipped: identity
    (tmp_path / FILE_NAME).write_text(json.dumps({"format": "radstation-calibration", "method": "platt",
                                                  "findings": {"Edema": {"a": 1.0}}}))
    with pytest.raises(ValueError, match="needs b"):
        Calibration.load(tmp_path)
    with pytest.raises(ValueError, match="band"):
        Calibration(band=(0.8, 0.2))
    with pytest.raises(ValueError, match="temperature"):
        FindingCalibration("temperature", {"t": 0})


def test_reliability_figure_is_written(tmp_path) -> None:
    rng = np.random.default_rng(2)
    p = rng.random(300)
    y = (rng.random(300) < p).astype(int)
    path = reliability_figure({"raw": (p, y)}, tmp_path / "rel.png", title="test")
    assert path.exists() and path.stat().st_size > 5000


def test_a_low_probability_is_uncertain_when_the_image_raised_a_rare_findings_odds() -> None:
    cal = Calibration(band=(0.35, 0.65), no_odds_ratio=2.0)
    assert cal.answer(0.03, prevalence=0.02) == "no"  # about the base rate: nothing seen
    assert cal.answer(0.15, prevalence=0.02) == "uncertain"  # 8.6x the odds: something is there, not enough
    assert cal.answer(0.15, prevalence=0.30) == "no"
    assert cal.answer(0.15) == "no" and cal.answer(0.7, prevalence=0.9) == "yes"
    with pytest.raises(ValueError, match="no_odds_ratio"):
        Calibration(no_odds_ratio=0.5)


def test_a_findings_own_no_rule_overrides_the_global_one_and_round_trips(tmp_path) -> None:
    """Per-finding ratios (chosen against a miss rate) may be below 1: "no" then needs the image to have lowered the
    odds; findings without one keep the global ratio."""
    cal = Calibration(band=(0.35, 0.65), no_odds_ratio=2.0, no_odds_ratios={"Cardiomegaly": 0.5})
    assert cal.answer(0.03, 0.025, "Cardiomegaly") == "uncertain"  # about the base rate: not low enough for "no"
    assert cal.answer(0.01, 0.025, "Cardiomegaly") == "no"  # the image lowered the odds below half
    assert cal.answer(0.03, 0.025, "Edema") == "no" and cal.answer(0.03, 0.025) == "no"  # the global rule
    back = Calibration.load(tmp_path) if cal.save(tmp_path) else None
    assert back is not None and back.no_odds_ratios == {"Cardiomegaly": 0.5} and back.no_ratio("Edema") == 2.0
    with pytest.raises(ValueError, match="no_odds_ratios"):
        Calibration(no_odds_ratios={"Edema": 0.0})


def test_a_reader_that_is_calibrated_already_is_not_calibrated_again(tmp_path) -> None:
    """The finding reader returns Platt-calibrated probabilities: a calibration fitted on the backbone's head is
    not applied on top of it (only its uncertain band is kept), one refit on the reader's own outputs is; on
    weights without a reader the head's calibration applies."""
    import torch

    from engines.models.tiny import make_tiny_checkpoint
    from engines.pipeline import MedimPipeline
    from engines.reader import FindingReader, ReaderConfig
    from engines.reader.network import ReaderNet
    from engines.reading import effective_calibration, read_images

    findings = ("Edema", "Pneumonia")
    folder = make_tiny_checkpoint(tmp_path / "w", findings=findings)
    squash = {f: FindingCalibration("platt", {"a": 0.0, "b": -3.0}) for f in findings}  # everything -> 4.7 %
    head_cal = Calibration(squash, band=(0.3, 0.7), info={"source": "head"})
    im = np.random.default_rng(0).random((32, 32)).astype(np.float32)

    head = MedimPipeline.from_pretrained(folder, device="cpu")
    cal, pre = effective_calibration(head, head_cal)
    assert not pre and cal.findings and read_images(head, [im], head_cal)["Edema"]["probability"] == pytest.approx(
        0.0474, abs=1e-3)

    torch.manual_seed(0)
    cfg = ReaderConfig(findings=findings, size=32, widths=(8, 16), crop="none", calibration={"Edema": (1.0, 8.0)})
    FindingReader(cfg, [ReaderNet(cfg)], None).save(folder / "reader")
    pipe = MedimPipeline.from_pretrained(folder, device="cpu")
    cal, pre = effective_calibration(pipe, head_cal)
    assert pre and not cal.findings and cal.band == (0.3, 0.7)
    reading = read_images(pipe, [im], head_cal)
    assert reading["Edema"]["probability"] == pytest.approx(pipe.finding_probabilities([im])[0]["Edema"], abs=1e-4)
    assert reading["Edema"]["probability"] > 0.99 and reading["Edema"]["calibrated"]
    refit = Calibration(squash, band=(0.3, 0.7), info={"source": "reader"})
    assert effective_calibration(pipe, refit)[0].findings  # refit on the reader's outputs: applied
    assert read_images(pipe, [im], refit)["Edema"]["probability"] == pytest.approx(0.0474, abs=1e-3)


def _scores(rng, n, slope, shift=0.0, groups_of=2):
    """Raw probabilities whose logit is `slope` times the true one plus `shift`, labels drawn from the truth, and
    patients holding `groups_of` rows each."""
    true_p = rng.uniform(0.02, 0.6, n)
    y = (rng.random(n) < true_p).astype(int)
    z = np.log(true_p / (1 - true_p))
    raw = 1 / (1 + np.exp(-(slope * z + shift)))
    return raw, y, np.repeat(np.arange(n // groups_of + 1), groups_of)[:n]


def test_selection_keeps_a_calibrated_score_and_repairs_a_miscalibrated_one() -> None:
    from lab.eval.calibration import select_calibration

    rng = np.random.default_rng(3)
    good, y_good, groups = _scores(rng, 3000, 1.0)
    bad, y_bad, _ = _scores(rng, 3000, 1.0, shift=1.2)  # over-predicts: what the reader does on val
    rare, y_rare, _ = _scores(rng, 3000, 1.0)
    y_rare[:] = 0
    y_rare[:3] = 1  # three positives: nothing can be judged
    cal, choices = select_calibration({"Good": good, "Bad": bad, "Rare": rare},
                                      {"Good": y_good, "Bad": y_bad, "Rare": y_rare}, groups,
                                      info={"fitted_on": {"split": "train"}})
    assert choices["Rare"].method == "identity" and choices["Rare"].cv == {}
    assert choices["Bad"].method in ("platt", "isotonic")  # a shift needs an intercept; temperature has none
    assert cal.apply({"Bad": 0.5})["Bad"] < 0.35  # pulled down by about the shift (sigmoid(-1.2) = 0.23)
    assert ece(np.array([cal.findings["Bad"](p) for p in bad]), y_bad) < 0.02 < ece(bad, y_bad)
    # the calibrated score: no method beats identity by much, and identity is what ships on a tie
    assert choices["Good"].cv["identity"]["log_loss"] <= min(d["log_loss"] for d in choices["Good"].cv.values()) + 2e-3
    assert cal.info["selection"]["Bad"]["method"] == choices["Bad"].method
    assert set(cal.info["selection"]["Good"]["cv"]) == {"identity", "temperature", "platt", "isotonic"}


def test_identity_method_round_trips_and_passes_probabilities_through(tmp_path) -> None:
    cal = Calibration({"Edema": FindingCalibration("identity", {}),
                       "Cardiomegaly": FindingCalibration("temperature", {"t": 2.0})}, info={"source": "reader"})
    cal.save(tmp_path)
    again = Calibration.load(tmp_path)
    assert again.findings["Edema"].method == "identity" and again.is_calibrated("Edema")
    assert again.apply({"Edema": 0.137})["Edema"] == pytest.approx(0.137)
    assert again.to_dict()["method"] == "mixed"


def test_grouped_folds_keep_a_patient_in_one_fold() -> None:
    from lab.eval.calibration import grouped_folds, grouped_out_of_fold

    rng = np.random.default_rng(4)
    raw, y, groups = _scores(rng, 400, 2.0, groups_of=4)
    fold = grouped_folds(y, groups, 5)
    for g in np.unique(groups):
        assert len(set(fold[groups == g])) == 1
    assert len(np.unique(fold)) == 5
    oof = grouped_out_of_fold(raw, y, groups, "platt")
    assert oof.shape == raw.shape and ece(oof, y) < ece(raw, y)


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_patients() -> None:
    from lab.eval.calibration import bootstrap_ece, judge_ece

    rng = np.random.default_rng(5)
    raw, y, groups = _scores(rng, 4000, 1.0, shift=1.0)
    e, lo, hi = bootstrap_ece(raw, y, groups, resamples=200)
    assert lo <= e <= hi and lo > 0.05
    e_s, lo_s, hi_s = bootstrap_ece(raw[:200], y[:200], groups[:200], resamples=200)
    assert hi_s - lo_s > hi - lo
    assert judge_ece(e, lo, hi) == "above"
    assert judge_ece(0.02, 0.01, 0.04) == "within"
    assert judge_ece(0.04, 0.02, 0.09) == "too wide to judge"
    assert judge_ece(0.048, 0.052, 0.11) == "too wide to judge"  # interval above only by the resampling's lean


def test_per_finding_reliability_grid_is_written(tmp_path) -> None:
    from lab.eval.calibration import reliability_grid

    rng = np.random.default_rng(6)
    panels = {}
    for name in ("Edema", "Cardiomegaly", "Pneumothorax"):
        p = rng.random(200)
        y = (rng.random(200) < p).astype(int)
        panels[name] = {"as read": (p, y), "as shown": (np.sqrt(p), y)}
    path = reliability_grid(panels, tmp_path / "grid.png", title="test")
    assert path.exists() and path.stat().st_size > 10000


def test_the_no_rule_compares_with_the_prevalence_the_calibration_was_fitted_on(tmp_path) -> None:
    from lab.eval.calibration import select_calibration

    rng = np.random.default_rng(7)
    raw, y, groups = _scores(rng, 2000, 1.0, shift=1.0)
    cal, _ = select_calibration({"Edema": raw}, {"Edema": y}, groups)
    assert cal.prior("Edema") == pytest.approx(y.mean()) and cal.prior("Cardiomegaly", 0.03) == 0.03
    cal.save(tmp_path)
    again = Calibration.load(tmp_path)
    assert again.prevalence == pytest.approx({"Edema": y.mean()}) and "prevalence" not in again.info
    # the reader's own prevalence (only images whose source labels the finding) can be far higher than the share
    # positive among all images; against it, 'no' would be said to probabilities 2x the base odds and more
    rare = Calibration(prevalence={"Edema": 0.05})
    assert rare.answer(0.15, rare.prior("Edema", 0.2)) == "uncertain"  # 3.4x the odds of its own base rate
    assert rare.answer(0.15, 0.2) == "no"  # against a prevalence on another scale
    with pytest.raises(ValueError, match="prevalence"):
        Calibration(prevalence={"Edema": 0.0})
