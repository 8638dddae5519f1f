"""A model that must look at one image token to write a word: its maps for that word peak there.

The task (tests/explain/synthetic.py): a bright-square code decides 'left'/'right', a distractor code
elsewhere decides nothing. An untrained model fails the same check (shown below), so it can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explain.attention import attention_grids
from explain.attribution import attribution_grids
from tests.support.explain_synthetic import GRID, MASK, SIDE_POS, sample, train_synthetic


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    return train_synthetic(150)


def _hits(model, method: str) -> int:
    pos = torch.arange(GRID * GRID)
    text, codes = sample(pos, (pos * 7 + 3) % (GRID * GRID))
    hits = 0
    for p in range(GRID * GRID):
        if method == "ig":
            m = attribution_grids(model, text[p].tolist(), codes[p].numpy(), [[SIDE_POS]], n_steps=16)[0]
        else:
            m = attention_grids(model, text[p].tolist(), codes[p].numpy(), [[SIDE_POS]], steps=4, method=method)[0]
        hits += int(np.argmax(m) == p)
    return hits


def test_trained_model_reads_the_square(trained):
    pos = torch.arange(GRID * GRID)
    text, codes = sample(pos, (pos + 5) % (GRID * GRID))
    inp = text.clone()
    inp[:, SIDE_POS] = MASK
    with torch.no_grad():
        pred = trained(inp, codes, torch.full((GRID * GRID,), 0.3)).text_logits[:, SIDE_POS].argmax(-1)
    assert (pred == text[:, SIDE_POS]).float().mean() > 0.9


@pytest.mark.parametrize("method", ["ig", "rollout", "mean"])
def test_maps_peak_on_the_square_not_the_distractor(trained, method):
    assert _hits(trained, method) >= 12  # of 16 square positions (chance: 1)


def test_untrained_model_fails_the_same_check():
    torch.manual_seed(0)
    from engines.models.backbone import MedimBackbone
    from tests.support.explain_synthetic import CONFIG

    assert _hits(MedimBackbone(CONFIG).eval(), "ig") <= 8
