"""Heat-map colouring for the overlay hook."""

from __future__ import annotations

import numpy as np
import pytest

from explain.colormap import COLORMAPS, colorize, colormap_table


def test_probabilities_keep_their_meaning_and_threshold_hides():
    rgba = colorize(np.array([[0.0, 0.4, 1.0]]), "gray", opacity=0.5, threshold=0.3)
    assert rgba.shape == (1, 3, 4)
    assert list(rgba[0, :, 0]) == [0, 102, 255]
    assert list(rgba[0, :, 3]) == [0, 128, 128]


def test_other_ranges_are_stretched_and_nan_is_transparent():
    rgba = colorize(np.array([[-5.0, 5.0, np.nan]]), "gray")
    assert rgba[0, 0, 0] == 0 and rgba[0, 1, 0] == 255 and rgba[0, 2, 3] == 0


def test_tables_and_errors():
    for name in COLORMAPS:
        assert colormap_table(name).shape == (256, 3)
    with pytest.raises(ValueError):
        colormap_table("rainbow-unicorn")
    with pytest.raises(ValueError):
        colorize(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError):
        colorize(np.zeros((2, 2)), opacity=2)
