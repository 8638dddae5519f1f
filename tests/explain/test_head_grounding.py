"""The finding head's attribution: a head trained to tell whether the bright square is there points at it.

Same synthetic images as test_synthetic_grounding (one informative square code, one distractor code);
an untrained head fails the same check, so it can fail.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from engines.models.backbone import MedimBackbone
from explain.attribution import finding_head_grid
from tests.support.explain_synthetic import CONFIG, GRID, MASK, sample

HEAD_CONFIG = replace(CONFIG, findings=("Lung Opacity",), finding_layer=2)


def _train_head(steps: int) -> MedimBackbone:
    torch.manual_seed(0)
    model = MedimBackbone(HEAD_CONFIG)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        pos = torch.randint(0, GRID * GRID, (64,))
        distractor = (pos + torch.randint(1, GRID * GRID, (64,))) % (GRID * GRID)
        pos = torch.where(torch.rand(64) < 0.5, torch.full_like(pos, -1), pos)
        _, codes = sample(pos, distractor)
        text = torch.full((64, HEAD_CONFIG.text_len), MASK)
        logits = model(text, codes, torch.ones(64)).finding_logits[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, (pos >= 0).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _hits(model: MedimBackbone) -> int:
    pos = torch.arange(GRID * GRID)
    _, codes = sample(pos, (pos * 7 + 3) % (GRID * GRID))
    return sum(int(np.argmax(finding_head_grid(model, codes[p].numpy(), ["Lung Opacity"])) == p)
               for p in range(GRID * GRID))


def test_trained_head_points_at_the_square():
    torch.set_num_threads(1)
    assert _hits(_train_head(150)) >= 12  # of 16 positions (chance: 1)


def test_untrained_head_fails_and_bad_requests_are_clear():
    torch.manual_seed(0)
    model = MedimBackbone(HEAD_CONFIG).eval()
    assert _hits(model) <= 8
    codes = np.zeros(GRID * GRID, np.int64)
    with pytest.raises(ValueError, match="not the head's"):
        finding_head_grid(model, codes, ["Pneumothorax"])
    with pytest.raises(ValueError, match="no finding head"):
        finding_head_grid(MedimBackbone(CONFIG), codes, ["Lung Opacity"])
