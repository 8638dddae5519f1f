"""lab.eval.reading_variants: per-finding scales find thresholds one global scale cannot, and the nested CV scores
each outer fold with what the others chose."""

import numpy as np

from engines.labeler.findings import FINDINGS
from lab.eval.reading_variants import (
    SCALES,
    choose_global,
    choose_per_finding,
    fold_scores,
    margins,
    nested,
    stacked,
)

CARDIO, EDEMA = FINDINGS.index("Cardiomegaly"), FINDINGS.index("Edema")


def _world(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref = np.zeros((n, len(FINDINGS)), bool)
    ref[:, CARDIO] = rng.random(n) < 0.2
    ref[:, EDEMA] = rng.random(n) < 0.2
    ref[:, 0] = ~(ref[:, CARDIO] | ref[:, EDEMA])
    p = np.zeros((n, len(FINDINGS)))
    p[:, CARDIO] = np.where(ref[:, CARDIO], 0.06, 0.01)  # separable only below 0.1 x 0.6
    p[:, EDEMA] = np.where(ref[:, EDEMA], 0.5, 0.25)  # separable only above 0.1 x 2.0

    def reading(scales, normal_scale):
        out = p > 0.1 * np.asarray(scales)[None, :]
        out[:, 0] = ~out[:, 1:].any(1)
        return out

    fold = rng.integers(0, 5, n)
    nih = np.ones(n, bool)
    retrieval = np.tile([0.5, 0.5, 0.5, 0.5, 0.5, 0.5], (5, 1))
    return ref, reading, fold, nih, retrieval


def test_per_finding_scales_reach_what_one_scale_cannot():
    ref, reading, fold, nih, retrieval = _world()
    inner = [0, 1, 2, 3]
    s, ns, v = choose_global(reading, ref, fold, nih, retrieval, inner)
    scales, _ = choose_per_finding(reading, ref, fold, nih, retrieval, inner)
    assert 0.1 * scales[CARDIO] < 0.06 and 0.1 * scales[EDEMA] > 0.25
    per = fold_scores(reading(scales, ns), ref, fold, nih)
    glob = fold_scores(reading(np.full(len(FINDINGS), s), ns), ref, fold, nih)
    assert np.allclose(per[:, 0], 1.0) and np.allclose(per[:, 2], 0.0)
    assert margins(per, retrieval).mean() > margins(glob, retrieval).mean()
    assert set(scales) <= set(SCALES)


def test_nested_scores_every_outer_fold():
    ref, reading, fold, nih, retrieval = _world(seed=1)
    out = nested("per-finding", lambda q: reading, ref, fold, nih, retrieval)
    assert out.shape == (5, 6) and np.allclose(out[:, 0], 1.0)
    glob = nested("global", lambda q: reading, ref, fold, nih, retrieval)
    assert (glob[:, 0] < 1.0).all()


def test_stacked_reading_learns_from_its_inputs_only_on_the_fit_images():
    rng = np.random.default_rng(2)
    n = 300
    ref = np.zeros((n, len(FINDINGS)), bool)
    ref[:, EDEMA] = rng.random(n) < 0.3
    informative = ref[:, EDEMA] + rng.normal(0, 0.3, n)
    feats = [np.column_stack([rng.normal(size=n), rng.normal(size=n)]) for _ in FINDINGS]
    feats[EDEMA] = np.column_stack([informative, rng.normal(size=n)])
    fit, read = np.arange(200), np.arange(200, 300)
    q = stacked(feats, ref, fit, read)
    assert q.shape == (100, len(FINDINGS))
    pos, neg = q[ref[read, EDEMA], EDEMA], q[~ref[read, EDEMA], EDEMA]
    assert pos.mean() > 0.6 > 0.3 > neg.mean()
    assert np.allclose(q[:, CARDIO], 0.0)  # no positives to fit: the fit images' share
