"""MeDiM-style denoiser: a bidirectional transformer over [text | image] with AdaLN time conditioning.

No causal mask anywhere (every token sees every other; MeDiM's ablation shows a kept causal mask
ruins generation). The continuous timestep t in [0, 1] enters through a sinusoidal embedding and
zero-initialised AdaLN (shift, scale, gate) in every block, so each block starts as the identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engines.models.config import MedimConfig


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of continuous t (B,) in [0, 1] -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, want_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if want_weights:
            w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
            out = w @ v
        else:
            w = None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False)
        return self.proj(out.transpose(1, 2).reshape(b, n, d)), w

    def forward_rows(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The attention output at `rows` only, (B, len(rows), d): every token's keys and values, those rows'
        queries."""
        b, n, d = x.shape
        w, bias = self.qkv.weight, self.qkv.bias
        q = F.linear(x[:, rows], w[:d], bias[:d]).view(b, -1, self.heads, d // self.heads).transpose(1, 2)
        k, v = F.linear(x, w[d:], bias[d:]).view(b, n, 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False)
        return self.proj(out.transpose(1, 2).reshape(b, -1, d))  # -1: an exported graph keeps the rows dynamic


class Block(nn.Module):
    def __init__(self, cfg: MedimConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(d, cfg.n_heads)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        hidden = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
        self.ada = nn.Linear(d, 6 * d)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, want_weights: bool = False):
        s1, sc1, g1, s2, sc2, g2 = self.ada(c).chunk(6, dim=-1)
        a, w = self.attn(_modulate(self.norm1(x), s1, sc1), want_weights)
        x = x + g1[:, None] * a
        x = x + g2[:, None] * self.mlp(_modulate(self.norm2(x), s2, sc2))
        return x, w

    def forward_rows(self, x: torch.Tensor, c: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The block's output at `rows` only, (B, len(rows), d) (the same maths as forward there; the matrix
        products run on fewer rows, which a BLAS may round differently in the last bits)."""
        s1, sc1, g1, s2, sc2, g2 = self.ada(c).chunk(6, dim=-1)
        a = self.attn.forward_rows(_modulate(self.norm1(x), s1, sc1), rows)
        x = x[:, rows] + g1[:, None] * a
        return x + g2[:, None] * self.mlp(_modulate(self.norm2(x), s2, sc2))


HEADS = ("both", "text", "image")


@dataclass
class BackboneOutput:
    text_logits: torch.Tensor | None  # (B, text_len, text_vocab); None when not asked for (heads="image")
    image_logits: torch.Tensor | None  # (B, image_len, image_vocab); None when not asked for (heads="text")
    attentions: list[torch.Tensor] | None = None  # per layer (B, heads, L, L), L = text_len + image_len
    finding_logits: torch.Tensor | None = None  # (B, len(config.findings)) when the model has a finding head


class MedimBackbone(nn.Module):
    def __init__(self, config: MedimConfig) -> None:
        super().__init__()
        self.config = cfg = config
        d = cfg.d_model
        self.text_embed = nn.Embedding(cfg.text_vocab_size, d)
        self.image_embed = nn.Embedding(cfg.image_vocab_size + 1, d)  # + image [MASK]
        self.pos = nn.Parameter(torch.randn(1, cfg.seq_len, d) * 0.02)
        self.segment = nn.Parameter(torch.randn(2, d) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(cfg.time_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Linear(d, 2 * d)
        nn.init.zeros_(self.final_ada.weight)
        nn.init.zeros_(self.final_ada.bias)
        self.text_head = nn.Linear(d, cfg.text_vocab_size)
        self.image_head = nn.Linear(d, cfg.image_vocab_size)
        self.finding_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, len(cfg.findings))) if cfg.findings else None
        if cfg.finding_condition:  # zero-initialised: a model fine-tuned from an unconditioned one starts unchanged
            # Two routes in: the AdaLN conditioning (global modulation, as DiT's class label) and every token's
            # input (so attention and the MLPs can write the finding words at the positions that need them).
            n = len(cfg.findings)
            self.condition_present = nn.Parameter(torch.zeros(n, d))
            self.condition_absent = nn.Parameter(torch.zeros(n, d))
            self.condition_input_present = nn.Parameter(torch.zeros(n, d))
            self.condition_input_absent = nn.Parameter(torch.zeros(n, d))
        # Token embeddings on the same small scale as the position embeddings: with PyTorch's default
        # N(0, 1) the tokens drown the positions (measured 10x larger norm after training) and the model
        # degenerates into a bag of words ("no no no ...").
        nn.init.normal_(self.text_embed.weight, std=0.02)
        nn.init.normal_(self.image_embed.weight, std=0.02)

    def embed_image(self, image_ids: torch.Tensor) -> torch.Tensor:
        """Image-token embeddings (B, image_len, d): the input Captum attributes onto."""
        return self.image_embed(image_ids)

    def _check(self, text_ids: torch.Tensor, image_ids: torch.Tensor | None, t: torch.Tensor) -> None:
        cfg = self.config
        if text_ids.ndim != 2 or text_ids.shape[1] != cfg.text_len:
            raise ValueError(f"text_ids must be (B, {cfg.text_len}), got {tuple(text_ids.shape)}")
        if image_ids is not None and (image_ids.ndim != 2 or image_ids.shape[1] != cfg.image_len):
            raise ValueError(f"image_ids must be (B, {cfg.image_len}), got {tuple(image_ids.shape)}")
        if t.ndim != 1 or t.shape[0] != text_ids.shape[0]:
            raise ValueError(f"t must be (B,) = ({text_ids.shape[0]},), got {tuple(t.shape)}")

    def condition_embedding(self, finding_states: torch.Tensor, route: str = "ada") -> torch.Tensor:
        """(B, d) added to the timestep conditioning (route "ada") or to every token's input ("input"):
        finding_states (B, len(findings)) holds 1 (present), 0 (absent), a probability in between (a weighted
        mix), or NaN (unknown: contributes nothing)."""
        cfg = self.config
        if not cfg.finding_condition:
            raise ValueError("this model was not trained with finding conditioning (config finding_condition)")
        if finding_states.ndim != 2 or finding_states.shape[1] != len(cfg.findings):
            raise ValueError(f"finding_states must be (B, {len(cfg.findings)}), got {tuple(finding_states.shape)}")
        s = finding_states.float()
        known = ~torch.isnan(s)
        s = torch.where(known, s.clamp(0, 1), torch.zeros_like(s))
        absent = torch.where(known, 1 - s, torch.zeros_like(s))
        if route == "input":
            return s @ self.condition_input_present + absent @ self.condition_input_absent
        return s @ self.condition_present + absent @ self.condition_absent

    def _inputs(self, text_ids: torch.Tensor, image_ids: torch.Tensor | None, t: torch.Tensor,
                image_embeds: torch.Tensor | None, finding_states: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(token inputs (B, seq_len, d), AdaLN conditioning (B, d)) for the blocks."""
        self._check(text_ids, image_ids, t)
        cfg = self.config
        img = image_embeds if image_embeds is not None else self.embed_image(image_ids)
        x = torch.cat([self.text_embed(text_ids) + self.segment[0], img + self.segment[1]], dim=1) + self.pos
        c = self.time_mlp(timestep_embedding(t, cfg.time_dim))
        if finding_states is not None:
            if finding_states.shape[0] != text_ids.shape[0]:
                raise ValueError(f"finding_states has {finding_states.shape[0]} rows for {text_ids.shape[0]} sequences")
            finding_states = finding_states.to(c.device)
            c = c + self.condition_embedding(finding_states)
            x = x + self.condition_embedding(finding_states, "input")[:, None]
        return x, c

    def finding_logits(self, text_ids: torch.Tensor, image_ids: torch.Tensor | None, t: torch.Tensor,
                       image_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """(B, findings): the finding head alone, running only the blocks up to `finding_layer` (the same
        values as forward's finding_logits, for a fraction of the cost: head guidance differentiates it
        every sampling step)."""
        if self.finding_head is None:
            raise ValueError("the model has no finding head")
        x, c = self._inputs(text_ids, image_ids, t, image_embeds, None)
        for blk in self.blocks[: self.config.finding_layer]:
            x, _ = blk(x, c, False)
        return self.finding_head(x[:, self.config.text_len:].mean(1))

    def forward(self, text_ids: torch.Tensor, image_ids: torch.Tensor | None, t: torch.Tensor,
                image_embeds: torch.Tensor | None = None, output_attentions: bool = False,
                finding_states: torch.Tensor | None = None, heads: str = "both",
                text_rows: torch.Tensor | None = None) -> BackboneOutput:
        """Logits for every position. Pass `image_embeds` instead of `image_ids` to differentiate
        with respect to the image-token embeddings (attributions); `finding_states` conditions a model trained
        with finding_condition (see condition_embedding). `heads` "text" or "image" computes only that
        segment's output head (the other logits are None): drafting with the image given needs no image
        logits, which were 256 x image_vocab outputs per row per step. `text_rows` (text positions) returns the
        text logits at those positions only, (B, len(text_rows), text_vocab): with heads "text" the last block
        then works out only those rows (a sentence slot's or an unmasking step's positions), unless attentions
        or a finding head after the last block need every row."""
        if heads not in HEADS:
            raise ValueError(f"heads must be one of {HEADS}, got {heads!r}")
        cfg = self.config
        x, c = self._inputs(text_ids, image_ids, t, image_embeds, finding_states)
        attns: list[torch.Tensor] = []
        findings = None
        rows_only = (text_rows is not None and heads == "text" and not output_attentions
                     and (self.finding_head is None or cfg.finding_layer < len(self.blocks)))
        for i, blk in enumerate(self.blocks, start=1):
            if rows_only and i == len(self.blocks):
                x = blk.forward_rows(x, c, text_rows)
                break
            x, w = blk(x, c, output_attentions)
            if w is not None:
                attns.append(w)
            if self.finding_head is not None and i == cfg.finding_layer:
                findings = self.finding_head(x[:, cfg.text_len:].mean(1))
        shift, scale = self.final_ada(c).chunk(2, dim=-1)
        text_logits = image_logits = None
        if heads in ("both", "text"):  # the final norm is per token: each segment is normalised on its own
            xt = x if rows_only else (x[:, :cfg.text_len] if text_rows is None else x[:, text_rows])
            text_logits = self.text_head(_modulate(self.final_norm(xt), shift, scale))
        if heads in ("both", "image"):
            image_logits = self.image_head(_modulate(self.final_norm(x[:, cfg.text_len:]), shift, scale))
        return BackboneOutput(text_logits, image_logits, attns if output_attentions else None, findings)
