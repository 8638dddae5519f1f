"""The shown what-if: the original plus the model's change, feathered around the region."""

from __future__ import annotations

import numpy as np
import pytest

from engines.counterfactual.composite import edit_weight, transfer_edit


def _region() -> np.ndarray:
    r = np.zeros((64, 64), bool)
    r[16:32, 16:32] = True
    return r


def test_weight_is_one_inside_and_falls_to_zero_over_the_feather() -> None:
    w = edit_weight(_region(), feather=8)
    assert w.dtype == np.float32 and (w[16:32, 16:32] == 1).all()
    row = w[24, 32:44]  # leaving the region to the right: distance 1, 2, ... 12
    assert (np.diff(row) <= 0).all() and 0 < row[0] < 1 and row[3] == pytest.approx(0.5 * (1 + np.cos(np.pi / 2)))
    assert (row[7:] == 0).all() and w[0, 0] == 0 and w[60, 60] == 0
    assert (edit_weight(_region(), 0) == _region()).all()


def test_transfer_keeps_the_original_where_the_weight_is_zero() -> None:
    rng = np.random.default_rng(0)
    original, recon, decoded = ((rng.random((64, 64)) * 255).astype(np.uint8) for _ in range(3))
    w = edit_weight(_region(), feather=4)
    out = transfer_edit(original, recon, decoded, w)
    assert out.dtype == np.uint8
    assert (out[w == 0] == original[w == 0]).all()
    inside = _region()
    expect = np.clip(original.astype(float) + decoded.astype(float) - recon, 0, 255).round()
    assert (out[inside] == expect[inside]).all()
    # where the model changed nothing the original comes through everywhere, region included
    assert (transfer_edit(original, recon, recon, w) == original).all()


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        edit_weight(np.zeros((8, 8), bool), 2)
    with pytest.raises(ValueError, match="feather"):
        edit_weight(_region(), -1)
    a = np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match="equal 2D shapes"):
        transfer_edit(a, a, np.zeros((8, 9), np.uint8), np.zeros((8, 8)))
