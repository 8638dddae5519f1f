"""Class activation map of the backbone's finding head: each image token's exact share of the head's logit.

The head (engines.models.config `findings`) is LayerNorm + Linear on the mean of the image-token states after
block `finding_layer`. With the LayerNorm's statistics taken from that mean (as the head computes them), the
logit is affine in the mean, so it splits exactly into one term per token:

    logit_f = mean_t  (w_f * gamma) . (h_t - mu) / sigma  +  w_f . beta + b_f

The per-token term is the map (CAM, Zhou et al. 2016, for a head after global average pooling). Unlike
Integrated Gradients it needs one forward pass and no baseline, and its mean is the logit itself.
"""

from __future__ import annotations

import numpy as np
import torch

from engines.models.backbone import MedimBackbone


def head_columns(model: MedimBackbone, findings: list[str]) -> list[int]:
    """Indices of `findings` in the head's outputs; a clear error for weights without a head or other findings."""
    cfg = model.config
    if not cfg.findings:
        raise ValueError("the model has no finding head")
    unknown = [f for f in findings if f not in cfg.findings]
    if unknown or not findings:
        raise ValueError(f"findings {unknown or findings} are not the head's ({', '.join(cfg.findings)})")
    return [cfg.findings.index(f) for f in findings]


@torch.no_grad()
def finding_head_cam(model: MedimBackbone, image_codes: np.ndarray, findings: list[str]) -> np.ndarray:
    """(g, g): each image token's contribution to the head's logits, summed over `findings` (report fully
    masked, t = 1, as when the head answers). Positive where the token argues for the findings."""
    cfg = model.config
    cols = head_columns(model, findings)
    dev = next(model.parameters()).device
    codes = torch.as_tensor(np.asarray(image_codes).reshape(1, -1), dtype=torch.long, device=dev)
    if codes.shape[1] != cfg.image_len:
        raise ValueError(f"expected {cfg.image_len} image codes, got {codes.shape[1]}")
    states: list[torch.Tensor] = []
    hook = model.blocks[cfg.finding_layer - 1].register_forward_hook(lambda _m, _i, out: states.append(out[0]))
    was_training = model.training
    model.eval()
    try:
        text = torch.full((1, cfg.text_len), cfg.text_mask_id, dtype=torch.long, device=dev)
        model(text, codes, torch.ones(1, device=dev))
    finally:
        hook.remove()
        model.train(was_training)
    h = states[0][0, cfg.text_len:].float()  # (L, d)
    norm, linear = model.finding_head[0], model.finding_head[1]
    m = h.mean(0)
    mu, sigma = m.mean(), torch.sqrt(m.var(unbiased=False) + norm.eps)
    w = (linear.weight[cols].float() * norm.weight.float()).sum(0)
    cam = ((h - mu) / sigma) @ w
    return cam.cpu().reshape(cfg.image_grid, cfg.image_grid).numpy().astype(np.float32)
