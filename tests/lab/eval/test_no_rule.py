"""The per-finding "no" rule: the largest odds ratio whose share of positives answered "no" stays under the stated
miss rate, checked on held-out grouped folds."""

from __future__ import annotations

import numpy as np
import pytest

from lab.eval.no_rule import answers_no, choose_ratio, cross_validate, miss_rate

BAND = (0.35, 0.65)


def _data(n: int = 3000, prev: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A weak reader of a rare finding: positives score higher on average, with a wide overlap."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(size=n) < prev
    z = np.log(prev / (1 - prev)) + rng.normal(0, 1, n) + 1.2 * y
    return 1 / (1 + np.exp(-z)), y


def test_the_chosen_ratio_keeps_the_miss_rate_under_the_target_and_is_the_largest_that_does() -> None:
    p, y = _data()
    r = choose_ratio(p, y, 0.05, BAND, 0.10)
    assert miss_rate(p, y, 0.05, r, BAND) <= 0.10
    bigger = [g for g in sorted(set(np.round(np.geomspace(0.01, 8.0, 49), 4))) if g > r]
    assert miss_rate(p, y, 0.05, float(bigger[0]), BAND) > 0.10  # the next ratio of the grid misses too many
    assert miss_rate(p, y, 0.05, 2.0, BAND) > 0.15  # the old global rule answered more positives "no"
    assert answers_no(p, 0.05, r, BAND).sum() < answers_no(p, 0.05, 2.0, BAND).sum()
    with pytest.raises(ValueError, match="miss rate"):
        choose_ratio(p, y, 0.05, BAND, 1.0)


def test_held_out_folds_stay_near_the_target() -> None:
    p, y = _data(6000)
    groups = [f"patient{i // 3}" for i in range(len(p))]
    cv = cross_validate(p, y, groups, 0.05, BAND, 0.10)
    assert len(cv) == 5 and all(c["ratio"] is not None for c in cv)
    missed, pos = sum(c["missed"] for c in cv), sum(c["positives"] for c in cv)
    assert pos == int(y.sum()) and missed / pos < 0.15
