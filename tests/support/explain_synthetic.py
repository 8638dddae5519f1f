"""A tiny backbone trained for seconds on a task where only one image token matters.

Image: 4x4 codes, all background (0) but one bright-square code (1) (or none) and one distractor code
(2) that carries no information; text: [FINDINGS] opacity <left|right|clear> [SEP], where the side is
the square's column half and 'clear' means no square. The side word can only be predicted
by finding the square, so a faithful map for it must peak on the square's token.
"""

from __future__ import annotations

import torch

from engines.models.backbone import MedimBackbone
from engines.models.config import MedimConfig

PAD, MASK, FINDINGS, LEFT, RIGHT, SEP, OPACITY, CLEAR = 0, 1, 2, 3, 4, 5, 6, 7
GRID = 4
CONFIG = MedimConfig(text_vocab_size=8, image_vocab_size=4, text_mask_id=MASK, text_pad_id=PAD, text_len=6,
                     image_grid=GRID, d_model=32, n_layers=2, n_heads=2, time_dim=16, name="synthetic")
SIDE_POS = 2  # row position of the side word


def sample(pos: torch.Tensor, distractor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and codes for square positions `pos` (B,) in 0..15, or -1 for no square ('clear'), and
    distractor positions (another cell). With 'clear' in the mix neither side word can be a default:
    each needs the square as evidence."""
    b = pos.shape[0]
    codes = torch.zeros(b, GRID * GRID, dtype=torch.long)
    codes[torch.arange(b), distractor] = 2
    has = pos >= 0
    codes[torch.arange(b)[has], pos[has]] = 1
    side = torch.where(pos % GRID < GRID // 2, LEFT, RIGHT)
    side = torch.where(has, side, torch.full_like(side, CLEAR))
    text = torch.tensor([FINDINGS, OPACITY, 0, SEP, PAD, PAD]).repeat(b, 1)
    text[:, SIDE_POS] = side
    return text, codes


def train_synthetic(steps: int = 150, seed: int = 0) -> MedimBackbone:
    torch.manual_seed(seed)
    model = MedimBackbone(CONFIG)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        pos = torch.randint(0, GRID * GRID, (64,))
        distractor = (pos + torch.randint(1, GRID * GRID, (64,))) % (GRID * GRID)
        pos = torch.where(torch.rand(64) < 1 / 3, torch.full_like(pos, -1), pos)
        text, codes = sample(pos, distractor)
        t = torch.rand(64).clamp_min(0.1)
        m = (torch.rand(text.shape) < t[:, None]) & (text != PAD)
        m[:, 0] = False
        m[:, SIDE_POS] = True
        inp = torch.where(m, torch.full_like(text, MASK), text)
        logits = model(inp, codes, t).text_logits
        loss = torch.nn.functional.cross_entropy(logits[m], text[m])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
