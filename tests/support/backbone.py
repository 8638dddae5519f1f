"""A tiny randomly initialised backbone with its AdaLN modulation switched on, and inputs for it."""

from __future__ import annotations

import torch

from engines.models.backbone import MedimBackbone
from engines.models.config import preset


def tiny_backbone(seed: int = 0) -> MedimBackbone:
    torch.manual_seed(seed)
    m = MedimBackbone(preset("tiny", text_vocab_size=50, image_vocab_size=16)).eval()
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "ada" in n:  # zero-initialised: make the modulation count
                p.normal_(0, 0.1)
    return m


def backbone_inputs(m: MedimBackbone, b: int = 1):
    """(text_ids, image_ids, t) drawn with a fixed generator."""
    g = torch.Generator().manual_seed(1)
    c = m.config
    return (torch.randint(0, c.text_vocab_size, (b, c.text_len), generator=g),
            torch.randint(0, c.image_vocab_size, (b, c.image_len), generator=g), torch.full((b,), 0.5))
