"""The finding head's CAM is an exact decomposition of its logit and points at the informative token."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.models.backbone import MedimBackbone
from engines.models.config import MedimConfig, preset
from explain.head_cam import finding_head_cam


def _model(seed=0) -> MedimBackbone:
    base = preset("tiny", text_vocab_size=50, image_vocab_size=16, text_mask_id=1, text_pad_id=0)
    torch.manual_seed(seed)
    m = MedimBackbone(MedimConfig.from_dict(base.to_dict() | {"findings": ["Edema", "Pneumonia"],
                                                               "finding_layer": 1}))
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "ada" in name or name.startswith("finding_head"):
                p.normal_(0, 0.3)
    return m.eval()


def test_the_cam_averages_to_the_heads_logit():
    m = _model()
    cfg = m.config
    codes = torch.randint(0, 16, (cfg.image_len,), generator=torch.Generator().manual_seed(1)).numpy()
    text = torch.full((1, cfg.text_len), cfg.text_mask_id)
    with torch.no_grad():
        logits = m(text, torch.as_tensor(codes)[None], torch.ones(1)).finding_logits[0]
    const = m.finding_head[1].weight @ m.finding_head[0].bias + m.finding_head[1].bias
    for cols, names in (([0], ["Edema"]), ([0, 1], ["Edema", "Pneumonia"])):
        cam = finding_head_cam(m, codes, names)
        assert cam.shape == (cfg.image_grid, cfg.image_grid)
        assert float(cam.mean()) == pytest.approx(float((logits - const)[cols].sum()), abs=1e-4)


def test_a_trained_head_points_at_the_token_that_decides():
    """Train the head on images whose label is set by one token's code; the CAM must peak there."""
    base = preset("tiny", text_vocab_size=50, image_vocab_size=16, text_mask_id=1, text_pad_id=0)
    torch.manual_seed(0)
    m = MedimBackbone(MedimConfig.from_dict(base.to_dict() | {"findings": ["Edema"], "finding_layer": 1}))
    cfg, spot = m.config, 5
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    text = torch.full((64, cfg.text_len), cfg.text_mask_id)
    for _ in range(150):
        codes = torch.randint(0, 8, (64, cfg.image_len), generator=g)
        y = (torch.rand(64, generator=g) < 0.5).float()
        codes[:, spot] = torch.where(y > 0, 12, 3).long()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            m(text, codes, torch.ones(64)).finding_logits[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    codes = torch.randint(0, 8, (cfg.image_len,), generator=g)
    codes[spot] = 12
    cam = finding_head_cam(m, codes.numpy(), ["Edema"])
    assert int(np.argmax(cam)) == spot


def test_bad_requests_are_clear_errors():
    m = _model()
    with pytest.raises(ValueError, match="not the head's"):
        finding_head_cam(m, np.zeros(m.config.image_len, int), ["Fracture"])
    with pytest.raises(ValueError, match="expected 16 image codes"):
        finding_head_cam(m, np.zeros(3, int), ["Edema"])
