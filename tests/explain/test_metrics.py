from __future__ import annotations

import numpy as np
import pytest

from lab.eval.map_metrics import (
    auroc,
    box_mask,
    centre_map,
    iou,
    mass_in,
    micro_f1,
    otsu_mask,
    pointing_hit,
    random_map,
    withheld_f1,
)


def test_pointing_and_iou_against_a_box():
    m = np.zeros((100, 100), np.float32)
    m[20:40, 60:80] = 1.0
    box = [(60, 20, 20, 20)]
    assert pointing_hit(m, box) and not pointing_hit(m, [(0, 60, 30, 30)])
    second = m.copy()
    second[70, 10] = 2.0
    assert pointing_hit(second, [(0, 60, 30, 30)]) and not pointing_hit(second, box)
    assert otsu_mask(m).sum() == 400 and iou(otsu_mask(m), box) == pytest.approx(1.0)
    assert iou(otsu_mask(m), [(60, 20, 20, 40)]) == pytest.approx(0.5)
    assert not otsu_mask(np.zeros((5, 5))).any()
    assert box_mask((10, 10), [(8, 8, 5, 5)]).sum() == 4  # clipped at the border
    assert mass_in(m, box) == 1.0 and mass_in(m, [(0, 0, 10, 10)]) == 0.0


def test_baselines():
    c = centre_map((64, 80))
    assert np.unravel_index(np.argmax(c), c.shape) in {(31, 39), (31, 40), (32, 39), (32, 40)}
    r = random_map((64, 80), np.random.default_rng(0))
    assert r.shape == (64, 80) and np.isfinite(r).all()


def test_uncertainty_scores():
    assert auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2], [True, True]) is None
    assert micro_f1([1, 1, 0, 0], [1, 0, 1, 0]) == 0.5
    pred = [True] * 5 + [False] * 5
    ref = [True, True, True, False, False, False, False, False, False, False]
    scores = [0.0, 0.0, 0.0, 1.0, 1.0, 0, 0, 0, 0, 0]  # the two false positives are the uncertain ones
    full, kept, rand = withheld_f1(pred, ref, scores, share=0.2)
    assert full == pytest.approx(0.75) and kept == 1.0 and rand < kept
