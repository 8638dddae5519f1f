"""Gradient attribution of a span's log-likelihood onto the image-token embeddings (Captum IG).

The score is log p(span tokens | image, the rest of the report) with the span's tokens masked, as the
sampler sees them when it writes them. Integrated Gradients runs from a baseline where every image
token is the image [MASK] embedding (the model's own "no image information" input) to the real
embeddings, so the attribution of a token measures how much seeing it raises the span's likelihood.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from captum.attr import IntegratedGradients

from engines.models.backbone import MedimBackbone
from explain.head_cam import head_columns


def _masked_row(text_ids: torch.Tensor, positions: list[int], mask_id: int) -> torch.Tensor:
    row = text_ids.clone()
    row[positions] = mask_id
    return row


def span_log_likelihood(model: MedimBackbone, text_ids: list[int], positions: list[int],
                        image_embeds: torch.Tensor) -> torch.Tensor:
    """(B,) differentiable sum of log p(true token) over `positions`, those positions masked."""
    cfg = model.config
    dev = image_embeds.device
    ids = torch.tensor(text_ids, dtype=torch.long, device=dev)
    row = _masked_row(ids, positions, cfg.text_mask_id)
    b = image_embeds.shape[0]
    n_free = int((ids != cfg.text_pad_id).sum()) - 1
    t = torch.full((b,), max(len(positions) / max(n_free, 1), 1e-3), device=dev)
    out = model(row[None].expand(b, -1), None, t, image_embeds=image_embeds, heads="text")
    logp = torch.log_softmax(out.text_logits.float(), -1)
    pos = torch.tensor(positions, dtype=torch.long, device=dev)
    return logp[:, pos].gather(-1, ids[pos][None, :, None].expand(b, -1, 1))[..., 0].sum(-1)


@torch.no_grad()
def span_token_stats(model: MedimBackbone, text_ids: list[int], image_codes: np.ndarray,
                     positions: list[int]) -> tuple[float, float]:
    """(mean predictive entropy in nats, mean probability of the written token) of a masked span:
    the model's own uncertainty about text that it did not necessarily write (edited reports)."""
    cfg = model.config
    dev = next(model.parameters()).device
    ids = torch.tensor(text_ids, dtype=torch.long, device=dev)
    codes = torch.as_tensor(np.asarray(image_codes).reshape(1, -1), dtype=torch.long, device=dev)
    row = _masked_row(ids, positions, cfg.text_mask_id)
    n_free = int((ids != cfg.text_pad_id).sum()) - 1
    t = torch.full((1,), max(len(positions) / max(n_free, 1), 1e-3), device=dev)
    logp = torch.log_softmax(model(row[None], codes, t, heads="text").text_logits.float()[0, positions], -1)
    ent = -(logp.exp() * logp).sum(-1)
    p_true = logp.gather(-1, ids[positions][:, None])[:, 0].exp()
    return float(ent.mean()), float(p_true.mean())


def _image_token_ig(model: MedimBackbone, image_codes: np.ndarray,
                    scores: list[Callable[[torch.Tensor], torch.Tensor]], n_steps: int) -> list[np.ndarray]:
    """(g, g) IG attribution per score function (image-token embeddings (B, L, d) -> (B,)), from the
    [MASK]-image baseline, summed over the embedding dimension; the model is in eval mode meanwhile."""
    if n_steps < 2:
        raise ValueError(f"n_steps must be >= 2, got {n_steps}")
    cfg = model.config
    dev = next(model.parameters()).device
    codes = torch.as_tensor(np.asarray(image_codes).reshape(1, -1), dtype=torch.long, device=dev)
    if codes.shape[1] != cfg.image_len:
        raise ValueError(f"expected {cfg.image_len} image codes, got {codes.shape[1]}")
    with torch.no_grad():
        emb = model.embed_image(codes)
        base = model.embed_image(torch.full_like(codes, cfg.image_mask_id))
    out = []
    was_training = model.training
    model.eval()
    try:
        for score in scores:
            attr = IntegratedGradients(score).attribute(emb, baselines=base, n_steps=n_steps,
                                                        internal_batch_size=n_steps)
            out.append(attr[0].sum(-1).detach().float().cpu().reshape(cfg.image_grid, cfg.image_grid).numpy())
    finally:
        model.train(was_training)
    return out


def attribution_grids(model: MedimBackbone, text_ids: list[int], image_codes: np.ndarray,
                      spans: list[list[int]], *, n_steps: int = 16) -> np.ndarray:
    """(n_spans, g, g) signed IG attribution (summed over the embedding dimension) per image token."""
    cfg = model.config
    res = np.full((len(spans), cfg.image_grid, cfg.image_grid), np.nan, np.float32)
    filled = [k for k, pos in enumerate(spans) if pos]
    grids = _image_token_ig(model, image_codes, [lambda e, p=spans[k]: span_log_likelihood(model, text_ids, p, e)
                                                 for k in filled], n_steps)
    for k, grid in zip(filled, grids, strict=True):
        res[k] = grid
    return res


def finding_head_grid(model: MedimBackbone, image_codes: np.ndarray, findings: list[str], *,
                      n_steps: int = 16) -> np.ndarray:
    """(g, g) signed IG attribution of the finding head's logits (summed over `findings`) per image token.

    The head (engines.models.config `findings`) is the part of the backbone trained directly to read
    findings from the image tokens, so its attribution points at what made the model call the finding;
    the report is fully masked (t = 1) as when the head answers. Same [MASK]-image baseline as above."""
    cfg = model.config
    dev = next(model.parameters()).device
    cols = torch.tensor(head_columns(model, findings), device=dev)

    def score(e: torch.Tensor) -> torch.Tensor:
        b = e.shape[0]
        text = torch.full((b, cfg.text_len), cfg.text_mask_id, dtype=torch.long, device=dev)
        return model(text, None, torch.ones(b, device=dev), image_embeds=e).finding_logits[:, cols].sum(-1)

    return _image_token_ig(model, image_codes, [score], n_steps)[0]
