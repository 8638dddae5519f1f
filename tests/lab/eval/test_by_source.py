"""lab.eval.by_source and lab.eval.bootstrap: the within-source table and its intervals."""

from __future__ import annotations

import numpy as np
import pytest

from lab.eval.bootstrap import cluster_bootstrap
from lab.eval.by_source import (
    format_finding_ci_table,
    format_table,
    scores_by_source,
    source_readability,
    subset_scores,
)


def test_a_source_shortcut_scores_overall_but_not_within_source():
    rng = np.random.default_rng(0)
    n = 400
    sources = np.where(np.arange(n) < 200, "nih_talo", "covid_ieee8023")
    truth = np.where(sources == "covid_ieee8023", rng.random(n) < 0.9, rng.random(n) < 0.2)[:, None]
    probs = (sources == "covid_ieee8023").astype(float)[:, None] + rng.normal(0, 0.1, (n, 1))  # reads the source
    rows = {r.name: r for r in scores_by_source(truth, probs, ["Pneumonia"], sources, [str(i) for i in range(n)],
                                                resamples=200)}
    assert rows["overall"].macro > 0.8
    assert abs(rows["NIH only"].macro - 0.5) < 0.12
    lo, hi = rows["NIH only"].macro_ci
    assert lo < 0.5 < hi
    assert "| NIH only | 200 |" in format_table(list(rows.values()), ["Pneumonia"])


def test_rare_findings_stay_out_of_the_macro():
    truth = np.zeros((50, 2), bool)
    truth[:25, 0] = True
    truth[:3, 1] = True
    probs = truth.astype(float)
    r = subset_scores("x", truth, probs, ["A", "B"], [str(i) for i in range(50)], resamples=50)
    assert r.macro_findings == ["A"] and r.macro == 1.0 and r.auroc["B"] == 1.0
    with pytest.raises(ValueError, match="must both be"):
        subset_scores("x", truth, probs[:, :1], ["A", "B"], ["g"] * 50)


def test_per_finding_table_gives_each_finding_its_interval_and_marks_rare_ones():
    rng = np.random.default_rng(1)
    n = 300
    truth = np.stack([rng.random(n) < 0.3, np.arange(n) < 3], 1)
    probs = np.stack([truth[:, 0] + rng.normal(0, 0.8, n), rng.random(n)], 1)
    r = subset_scores("overall", truth, probs, ["A", "B"], [str(i) for i in range(n)], resamples=200)
    lo, hi = r.auroc_ci["A"]
    assert lo < r.auroc["A"] < hi and hi - lo < 0.2
    table = format_finding_ci_table([r], ["A", "B"])
    assert f"| A | {r.auroc['A']:.3f} ({lo:.2f}-{hi:.2f}), {int(truth[:, 0].sum())} |" in table
    assert "| B | - (3) |" in table  # three positives: no AUROC claimed


def test_cluster_bootstrap_resamples_whole_groups():
    values = np.array([0.0] * 10 + [1.0] * 10)
    groups = ["a"] * 10 + ["b"] * 10  # two patients: a resample has 0, 1 or 2 of each
    ci = cluster_bootstrap(lambda i: float(values[i].mean()), groups, resamples=400)
    assert ci[0] == 0.0 and ci[1] == 1.0  # with groups kept whole the mean is 0, 0.5 or 1
    assert cluster_bootstrap(lambda i: None, groups, resamples=20) is None


def test_source_readability_sees_a_source_feature_and_not_noise():
    rng = np.random.default_rng(0)
    src = np.array(["nih_zech"] * 100 + ["figure1"] * 100)
    leaky = np.c_[np.isin(src, ["nih_zech"]).astype(float) + rng.normal(0, 0.3, 200), rng.normal(size=200)]
    noise = rng.normal(size=(200, 2))
    assert source_readability(leaky, src, leaky, src) > 0.9
    assert abs(source_readability(noise[::2], src[::2], noise[1::2], src[1::2]) - 0.5) < 0.15
    assert source_readability(noise, ["nih_zech"] * 200, noise, src) is None
