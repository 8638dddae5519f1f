"""Iterative unmasking (MaskGIT / LLaDA): predict every masked token, commit the most confident, repeat.

Each step samples a candidate for every masked position (Gumbel-max on the guided distribution,
deterministic under the generator), then keeps the ones with the highest confidence so that the
number still masked follows a cosine schedule to zero; the rest are re-masked. For every committed
token its confidence (probability of the chosen token), predictive entropy (nats) and the step are
recorded: the uncertainty display reads them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from engines.errors import JobCancelled
from engines.models.backbone import MedimBackbone


@dataclass
class UnmaskResult:
    text: torch.Tensor  # (B, text_len)
    image: torch.Tensor  # (B, image_len)
    text_confidence: torch.Tensor  # (B, text_len) float, NaN where not generated
    text_entropy: torch.Tensor
    text_step: torch.Tensor  # (B, text_len) long, -1 where not generated
    image_confidence: torch.Tensor
    image_entropy: torch.Tensor
    image_step: torch.Tensor


@dataclass
class SamplingOptions:
    steps: int = 32
    guidance: float = 0.0  # logits = cond + guidance * (cond - uncond); 0 turns guidance off
    temperature: float = 1.0  # 0 -> greedy
    pool_text: bool = False  # rows are views of one study: share one text, average text evidence
    text_block: int = 0  # >0: semi-autoregressive text (LLaDA): only the leftmost unfinished block of
    #                      this many positions may be committed, which stops parallel repeats ("no no no")
    image_order_temperature: float = 0.0  # >0: MaskGIT's randomised commit order for image tokens (Gumbel
    #                      noise on log-confidence, annealed to 0), so flat background codes do not win
    #                      every early step and wash the image out


def _remaining(n_free: torch.Tensor, k: int, steps: int) -> torch.Tensor:
    """How many free positions stay masked after step k (cosine schedule, 0 after the last)."""
    frac = math.cos(math.pi / 2 * (k + 1) / steps)
    return torch.floor(n_free.float() * frac).long()


def _leftmost_block(masked: torch.Tensor, block: int) -> torch.Tensor:
    """(B, L) bool: positions in the first block (of `block` positions) that still holds a mask."""
    pos = torch.arange(masked.shape[1], device=masked.device)
    first = torch.where(masked, pos, torch.full_like(pos, masked.shape[1])).min(1).values
    start = (first // block) * block
    return (pos[None] >= start[:, None]) & (pos[None] < start[:, None] + block)


def _guided_logp(model: MedimBackbone, text: torch.Tensor, image: torch.Tensor, t: torch.Tensor,
                 uncond: tuple[torch.Tensor, torch.Tensor] | None, guidance: float,
                 finding_states: torch.Tensor | None = None, uncond_states: torch.Tensor | None = None,
                 heads: str = "both", text_cols: torch.Tensor | None = None,
                 text_banned: torch.Tensor | None = None):
    """Guided log-probabilities (text, image); a segment not in `heads` is None (nothing left to fill there).
    `text_cols` (sorted positions) returns the text's only at those positions, (B, len(text_cols), V), which
    the backbone then works out for those rows only; `text_banned` token ids get probability 0."""
    told = {} if finding_states is None else {"finding_states": finding_states}
    rows = {} if text_cols is None else {"text_rows": text_cols}
    out = model(text, image, t, heads=heads, **rows, **told)
    lt = _text_cols(out.text_logits, text_cols)
    lt = lt.float() if lt is not None else None
    li = out.image_logits.float() if out.image_logits is not None else None
    if uncond is not None and guidance != 0.0:
        ut, ui = uncond
        ut = torch.where(text == model.config.text_mask_id, text, ut)  # what is generated so far stays
        ui = torch.where(image == model.config.image_mask_id, image, ui)
        # Both passes are told the same findings (guidance is on the image/report), unless `uncond_states` gives
        # the unconditional pass its own: guidance then also pushes away from those findings (a what-if's current
        # report).
        ou = model(ut, ui, t, heads=heads, **rows,
                   **({"finding_states": uncond_states} if uncond_states is not None else told))
        if lt is not None:
            lt = lt + guidance * (lt - _text_cols(ou.text_logits, text_cols).float())
        if li is not None:
            li = li + guidance * (li - ou.image_logits.float())
    if lt is not None and text_banned is not None:
        lt[..., text_banned.to(lt.device)] = -float("inf")
    return (torch.log_softmax(lt, -1) if lt is not None else None,
            torch.log_softmax(li, -1) if li is not None else None)


def _text_cols(logits: torch.Tensor | None, cols: torch.Tensor | None) -> torch.Tensor | None:
    """The text logits at `cols`, from a backbone that gave only those or (a runtime that ignores text_rows,
    ONNX) every position."""
    if logits is None or cols is None or logits.shape[1] == len(cols):
        return logits
    return logits[:, cols]


def _heads_needed(text_masked: torch.Tensor, image_masked: torch.Tensor) -> str:
    """Which output heads a step needs: a draft (image given) needs no image logits, an image-only
    what-if no text logits."""
    want_text, want_image = bool(text_masked.any()), bool(image_masked.any())
    return "both" if want_text and want_image else ("text" if want_text else "image")


def _propose(logp: torch.Tensor, temperature: float, g: torch.Generator, shared: bool, where: torch.Tensor,
             cols: torch.Tensor | None = None):
    """Sampled token, its probability, and the entropy of each position's distribution, (B, L) each.

    Only the positions in `where` (B, L) are worked out (0 elsewhere): the others are never committed (over a
    draft about a third of the text positions are already filled, and of the rest only the current text block
    may be committed). `logp` is (B, L, V), or with `cols` (sorted positions) (B, len(cols), V) holding only
    those positions, outside which `where` is False. The noise is still drawn for every position of (B, L, V),
    so the generator advances exactly as before and the sampled tokens are the same."""
    b, n = where.shape
    wc = where if cols is None else where[:, cols]
    lp = logp[wc]  # (M, V): one row per position worked out
    probs = lp.exp()
    entropy = -torch.where(probs > 0, probs * lp, torch.zeros_like(probs)).sum(-1)
    if temperature <= 0:
        tok = lp.argmax(-1)
    else:
        v = logp.shape[-1]
        u = torch.rand((1 if shared else b, n, v), generator=g).to(logp.device)
        u = u.expand(b, n, v) if shared else u
        u = (u if cols is None else u[:, cols])[wc].clamp_(1e-10, 1 - 1e-10)
        gumbel = -torch.log(-torch.log(u))
        tok = (lp / temperature + gumbel).argmax(-1)
    conf = probs.gather(-1, tok[:, None])[:, 0]
    at = where
    if cols is not None:
        at = torch.zeros_like(where)
        at[:, cols] = wc
    full_tok = torch.zeros(where.shape, dtype=tok.dtype, device=tok.device)
    full_conf = torch.zeros(where.shape, dtype=conf.dtype, device=conf.device)
    full_ent = torch.zeros(where.shape, dtype=entropy.dtype, device=entropy.device)
    full_tok[at], full_conf[at], full_ent[at] = tok, conf, entropy
    return full_tok, full_conf, full_ent


@torch.no_grad()
def unmask(model: MedimBackbone, text: torch.Tensor, image: torch.Tensor, *, opts: SamplingOptions,
           generator: torch.Generator, uncond: tuple[torch.Tensor, torch.Tensor] | None = None,
           text_banned: list[int] | None = None,
           progress: Callable[[int, int], None] | None = None,
           cancel: Callable[[], bool] | None = None,
           finding_states: torch.Tensor | None = None,
           uncond_finding_states: torch.Tensor | None = None,
           image_bias: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> UnmaskResult:
    """Fill every [MASK] in `text` (B, text_len) and `image` (B, image_len); `finding_states` (B, findings)
    conditions a finding-conditioned model (engines.sampling.finding_states). `image_bias(image, logp_image)`
    returns an additive bias for the image log-probabilities each step (engines.sampling.head_guidance)."""
    cfg = model.config
    if opts.steps < 1:
        raise ValueError(f"steps must be >= 1, got {opts.steps}")
    text, image = text.clone(), image.clone()
    tm, im = text == cfg.text_mask_id, image == cfg.image_mask_id
    n_free_t, n_free_i = tm.sum(1), im.sum(1)
    n_total = (n_free_t + n_free_i).clamp_min(1)
    nan = float("nan")
    res = UnmaskResult(text, image, torch.full(text.shape, nan), torch.full(text.shape, nan),
                       torch.full(text.shape, -1, dtype=torch.long), torch.full(image.shape, nan),
                       torch.full(image.shape, nan), torch.full(image.shape, -1, dtype=torch.long))
    banned = torch.tensor(sorted(set(text_banned or []) | {cfg.text_mask_id}), dtype=torch.long)
    steps = opts.steps
    for k in range(steps):
        if cancel is not None and cancel():
            raise JobCancelled("generation cancelled")
        tm, im = text == cfg.text_mask_id, image == cfg.image_mask_id
        if not tm.any() and not im.any():
            break
        t = ((tm.sum(1) + im.sum(1)).float() / n_total).clamp(1e-3, 1.0)
        # Text positions this step may commit: the text's sampling maths runs on those columns only.
        text_eligible = tm
        if opts.text_block > 0 and k < steps - 1:
            text_eligible = tm & _leftmost_block(tm, opts.text_block)
        cols = torch.nonzero(text_eligible.any(0)).flatten()
        if opts.pool_text and text.shape[0] > 1:  # pooled rows average every row's column: all rows' positions
            text_eligible = text_eligible.any(0, keepdim=True).expand_as(tm)
        lpt, lpi = _guided_logp(model, text, image, t, uncond, opts.guidance, finding_states, uncond_finding_states,
                                heads=_heads_needed(tm, im), text_cols=cols, text_banned=banned)
        if image_bias is not None and lpi is not None and im.any():
            lpi = torch.log_softmax(lpi + image_bias(image, lpi), -1)
        if lpt is not None and opts.pool_text and text.shape[0] > 1:
            lpt = torch.log_softmax(lpt.mean(0, keepdim=True), -1).expand_as(lpt)
        for seg, logp, masked, n_free, conf_out, ent_out, step_out in (
                ("text", lpt, tm, n_free_t, res.text_confidence, res.text_entropy, res.text_step),
                ("image", lpi, im, n_free_i, res.image_confidence, res.image_entropy, res.image_step)):
            if logp is None or not masked.any():
                continue
            text_seg = seg == "text"
            tok, conf, ent = _propose(logp, opts.temperature, generator, shared=text_seg and opts.pool_text,
                                      where=text_eligible if text_seg else masked, cols=cols if text_seg else None)
            eligible = masked
            if text_seg and opts.text_block > 0 and k < steps - 1:
                eligible = masked & _leftmost_block(masked, opts.text_block)
                # An even share of what is left per step, taken from the current block only.
                n_commit = torch.ceil(masked.sum(1).float() / (steps - k)).long()
            else:
                keep_masked = _remaining(n_free, k, steps) if k < steps - 1 else torch.zeros_like(n_free)
                n_commit = (masked.sum(1) - keep_masked).clamp_min(0)
            score = torch.where(eligible, conf, torch.full_like(conf, -1.0))
            if seg == "image" and opts.image_order_temperature > 0:
                u = torch.rand(conf.shape, generator=generator).clamp_(1e-10, 1 - 1e-10).to(conf.device)
                noisy = conf.clamp_min(1e-30).log() + opts.image_order_temperature * (1 - (k + 1) / steps) * (
                    -torch.log(-torch.log(u)))
                score = torch.where(eligible, noisy, torch.full_like(conf, -float("inf")))
            order = score.argsort(dim=1, descending=True, stable=True)
            rank = torch.empty_like(order)
            rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
            commit = eligible & (rank < n_commit[:, None])
            target = text if seg == "text" else image
            target[commit] = tok[commit]
            c = commit.cpu()
            conf_out[c] = conf.cpu()[c]
            ent_out[c] = ent.cpu()[c]
            step_out[c] = k
        if progress is not None:
            progress(k + 1, steps)
    res.text, res.image = text, image
    return res
