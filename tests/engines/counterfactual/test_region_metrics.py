from __future__ import annotations

import numpy as np
import pytest

from engines.counterfactual.metrics import difference_map, preservation
from engines.counterfactual.region import (
    _positions,
    pixel_mask_to_tokens,
    select_tokens,
    tokens_to_pixels,
    widen,
)


def test_select_takes_the_top_blob_within_the_area_budget() -> None:
    s = np.zeros((8, 8))
    s[3, 4] = 5.0
    m = select_tokens(s, area=9 / 64, margin=1, smooth=0)
    assert m.sum() == 9 and m[2:5, 3:6].all()
    assert select_tokens(s, area=1 / 64, margin=0, smooth=0).sum() == 1
    assert select_tokens(s, area=1 / 64, margin=1, smooth=0).sum() == 9  # one seed always, widened
    big = select_tokens(np.random.default_rng(0).random((16, 16)), area=0.15, margin=1)
    assert 0 < big.sum() <= round(0.15 * 256)
    with pytest.raises(ValueError, match="area"):
        select_tokens(s, area=0)


def test_ties_never_select_more_than_asked() -> None:
    assert select_tokens(np.ones((4, 4)), area=0.25, margin=0).sum() == 4


def test_widen_clips_at_the_border() -> None:
    m = np.zeros((4, 4), bool)
    m[0, 0] = True
    assert widen(m, 2).sum() == 9


def test_painted_region_maps_through_the_centred_square_padding() -> None:
    paint = np.zeros((100, 50), bool)  # tall image: padded 25 px left and right to 100x100
    paint[:, :10] = True  # the image's left edge = square columns 25..35
    t = pixel_mask_to_tokens(paint, 4)
    assert t[:, 1].all() and not t[:, 0].any() and not t[:, 2:].any()
    with pytest.raises(ValueError, match="covers no image token"):
        pixel_mask_to_tokens(np.zeros((20, 20), bool), 4)
    with pytest.raises(ValueError, match="2D"):
        pixel_mask_to_tokens(np.zeros(5, bool), 4)


def test_tokens_to_pixels_is_blockwise() -> None:
    t = np.zeros((4, 4), bool)
    t[1, 2] = True
    p = tokens_to_pixels(t, 32)
    assert p.sum() == 64 and p[8:16, 16:24].all()


def test_sentence_positions_tolerate_a_different_first_token() -> None:
    row = [5, 9, 10, 11, 12, 3, 0, 0]
    assert _positions(row, [99, 10, 11, 12]) == [1, 2, 3, 4]
    assert _positions(row, [77, 78]) == []


def test_preservation_separates_inside_from_outside() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (64, 64)).astype(np.uint8)
    b = a.copy()
    region = np.zeros((64, 64), bool)
    region[20:40, 20:40] = True
    b[region] = 255 - b[region]
    p = preservation(a, b, region)
    assert p.mad_outside == 0.0 and p.mad_inside > 50
    assert p.ssim_outside > p.ssim_inside
    assert p.region_share == pytest.approx(400 / 4096)
    assert difference_map(a, b)[25, 25] == float(b[25, 25]) - float(a[25, 25])
    with pytest.raises(ValueError, match="equal 2D shapes"):
        preservation(a, b[:10], region)
