"""Where a span of the report looks in the image: text->image attention aggregated over layers
(attention rollout, Abnar & Zuidema 2020, or a plain mean) and over the noise levels of sampling.

A draft is written over many unmasking steps, each at a different masking level; the attention at
one clean forward pass is only one of them. So the row is re-noised at the schedule's masking levels
(the cosine schedule the sampler uses), all levels run as one batch, and the maps are averaged.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engines.models.backbone import MedimBackbone

METHODS = ("rollout", "mean")


def _noised_rows(text_ids: torch.Tensor, free: torch.Tensor, steps: int, mask_id: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    rows, ts = [], []
    n_free = int(free.sum())
    idx = torch.nonzero(free)[:, 0]
    for k in range(steps):
        frac = math.cos(math.pi / 2 * k / steps)  # share still masked at step k (1.0 at the first)
        n = int(round(frac * n_free))
        row = text_ids.clone()
        if n:
            pick = idx[torch.randperm(n_free, generator=generator)[:n]]
            row[pick] = mask_id
        rows.append(row)
        ts.append(max(n / max(n_free, 1), 1e-3))
    return torch.stack(rows), torch.tensor(ts)


def _rollout(att: list[torch.Tensor]) -> torch.Tensor:
    """Product of per-layer (head-averaged) attention with the residual path: (B, L, L)."""
    out = None
    for a in att:
        a = a.mean(1)
        a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], device=a.device)
        a = a / a.sum(-1, keepdim=True)
        out = a if out is None else a @ out
    return out


@torch.no_grad()
def attention_grids(model: MedimBackbone, text_ids: list[int], image_codes: np.ndarray,
                    spans: list[list[int]], *, steps: int = 4, method: str = "rollout",
                    seed: int = 0) -> np.ndarray:
    """(n_spans, g, g) attention from each span's row positions to the image tokens.

    `spans` lists row positions per span (a sentence or a finding mention); an empty list gives NaNs."""
    if method not in METHODS:
        raise ValueError(f"unknown attention aggregation {method!r}; use one of {METHODS}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    cfg = model.config
    dev = next(model.parameters()).device
    text = torch.tensor(text_ids, dtype=torch.long)
    codes = torch.as_tensor(np.asarray(image_codes).reshape(-1), dtype=torch.long)
    if text.shape != (cfg.text_len,) or codes.shape != (cfg.image_len,):
        raise ValueError(f"expected {cfg.text_len} text ids and {cfg.image_len} image codes, "
                         f"got {tuple(text.shape)} and {tuple(codes.shape)}")
    free = text != cfg.text_pad_id
    free[0] = False
    g = torch.Generator().manual_seed(seed)
    rows, ts = _noised_rows(text, free, steps, cfg.text_mask_id, g)
    out = model(rows.to(dev), codes[None].expand(steps, -1).to(dev), ts.to(dev), output_attentions=True)
    att = [a.float() for a in out.attentions]
    agg = _rollout(att) if method == "rollout" else torch.stack(att).mean((0, 2))  # (B, L, L)
    t2i = agg[:, :cfg.text_len, cfg.text_len:].mean(0).cpu()  # (text_len, image_len)
    res = np.full((len(spans), cfg.image_grid, cfg.image_grid), np.nan, np.float32)
    for k, pos in enumerate(spans):
        if pos:
            res[k] = t2i[pos].mean(0).reshape(cfg.image_grid, cfg.image_grid).numpy()
    return res
