"""The token probe learns findings that the token grid really holds, and refuses what it cannot run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lab.eval.token_probe import probe


def _grids(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 1 grids carry code 7 in their upper-left quarter; everything else is noise over codes 0-15."""
    codes = torch.randint(0, 16, (n, 64), generator=g)
    y = (torch.rand(n, generator=g) < 0.5).float()
    grid = codes.view(n, 8, 8)
    grid[y.bool(), :4, :4] = 7
    return grid.reshape(n, 64), y[:, None]


@pytest.mark.parametrize("arch", ["transformer", "conv"])
def test_probe_finds_what_the_grid_holds(arch):
    g = torch.Generator().manual_seed(0)
    x, y = _grids(256, g)
    xv, yv = _grids(64, g)
    res = probe(x[None], y, xv, yv.numpy(), arch=arch, vocab=16, steps=60, batch=32)
    assert res["steps"] == 60 and res["macro_auroc"] > 0.9


def test_probe_refuses_an_unknown_arch_and_a_missing_budget():
    x = torch.zeros(1, 4, 64, dtype=torch.long)
    with pytest.raises(ValueError, match="unknown arch"):
        probe(x, torch.zeros(4, 1), x[0], np.zeros((4, 1)), arch="mlp", vocab=16, steps=1)
    with pytest.raises(ValueError, match="minutes or steps"):
        probe(x, torch.zeros(4, 1), x[0], np.zeros((4, 1)), arch="conv", vocab=16)
