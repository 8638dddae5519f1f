"""Finding-head guidance for image sampling: tilt each masked image token towards codes that move the
backbone's finding head the asked way (up for a finding a what-if adds, down for one it removes).

Report guidance alone barely changes the finding content of resampled tokens (the image side does not draw
findings on request), so the head, which was trained to read findings from image tokens, steers them. This is
predictor guidance for discrete diffusion with the first-order (Taylor) approximation of Nisonoff et al. 2024
and DiGress: for a masked position i and a candidate code v,

    log p(v) += scale * (E[v] . d score / d e_i)

where e_i is the position's input embedding, evaluated at the model's current expectation of the clean image
(each masked position the mix of code embeddings under its predicted distribution) and score = sum of
sign_f * head logit_f. The bias is normalised to unit standard deviation over the masked positions, so `scale`
is the typical shift in nats whatever the size of the head's gradient.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from engines.models.backbone import MedimBackbone


def head_signs(model: MedimBackbone, push: Mapping[str, float]) -> torch.Tensor:
    """(findings,) float: the sign (or weight) per head finding, 0 for findings not pushed; a clear error for
    a model without a head or findings it does not know."""
    cfg = model.config
    if not cfg.findings:
        raise ValueError("head guidance needs a model with a finding head")
    unknown = sorted(set(push) - set(cfg.findings))
    if unknown:
        raise ValueError(f"findings {unknown} are not the head's ({', '.join(cfg.findings)})")
    return torch.tensor([float(push.get(f, 0.0)) for f in cfg.findings])


def _score_gradient(model: MedimBackbone, emb: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """d (sum_f sign_f * head logit_f) / d image embeddings, at `emb` (B, image_len, d), report fully masked."""
    cfg = model.config
    b = emb.shape[0]
    with torch.enable_grad():
        emb = emb.detach().requires_grad_(True)
        text = torch.full((b, cfg.text_len), cfg.text_mask_id, dtype=torch.long, device=emb.device)
        was_training = model.training
        model.eval()
        try:
            logits = model.finding_logits(text, None, torch.ones(b, device=emb.device), image_embeds=emb)
        finally:
            model.train(was_training)
        score = (logits.float() * signs.to(logits.device).expand_as(logits)).sum()
        (grad,) = torch.autograd.grad(score, emb)
    return grad


def head_token_potential(model: MedimBackbone, codes: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """(B, image_len) >= 0: how far, to first order, replacing each observed token by its best code would move
    the finding head the asked way: max_v (e_v - e_current) . d score / d e. Where an edit's evidence sits for
    the head, so the what-if region can be drawn there (engines.counterfactual.region)."""
    cfg = model.config
    if bool((codes >= cfg.image_vocab_size).any()) or bool((codes < 0).any()):
        raise ValueError("head potential needs an observed image (codes, no [MASK])")
    table = model.image_embed.weight[: cfg.image_vocab_size].detach()
    grad = _score_gradient(model, model.embed_image(codes).detach(), signs)
    raw = grad.float() @ table.float().T  # (B, L, V)
    return (raw.max(-1).values - raw.gather(-1, codes[..., None]).squeeze(-1)).clamp_min(0.0)


def head_guidance_bias(model: MedimBackbone, image: torch.Tensor, logp_image: torch.Tensor,
                       signs: torch.Tensor, scale: float) -> torch.Tensor:
    """(B, image_len, image_vocab) additive bias for the image log-probabilities; zero at positions already
    committed and everywhere when `scale` or `signs` are zero. `image` holds the current codes ([MASK] where
    still free), `logp_image` the sampler's log-probabilities for them; `signs` is (findings,) for every row
    or (B, findings) per row."""
    cfg = model.config
    bias = torch.zeros_like(logp_image)
    masked = image == cfg.image_mask_id
    if scale == 0.0 or not masked.any() or not bool(signs.ne(0).any()):
        return bias
    table = model.image_embed.weight[: cfg.image_vocab_size].detach()  # (V, d), the [MASK] row excluded
    known = model.embed_image(image.clamp_max(cfg.image_vocab_size - 1)).detach()
    soft = logp_image.exp().to(table.dtype) @ table  # expected embedding under the prediction
    grad = _score_gradient(model, torch.where(masked[..., None], soft, known), signs)
    raw = grad.float() @ table.float().T  # (B, L, V): first-order change of the score per candidate code
    raw = raw - raw.mean(-1, keepdim=True)
    for row in range(raw.shape[0]):  # per sequence, so a batch gives each row what it alone would get
        sel = raw[row][masked[row]]
        std = sel.std() if sel.numel() > 1 else sel.new_tensor(0.0)
        if torch.isfinite(std) and std > 0:
            bias[row] = torch.where(masked[row, :, None], raw[row] / std * scale, bias[row])
    return bias
