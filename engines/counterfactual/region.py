"""Which image tokens an edit concerns: a (g, g) boolean token mask.

Two cues from the model itself, combined by rank so neither's scale dominates:
- attention: where the changed sentences (gone from the old report, new in the edited one) look in the
  image, relative to where the report as a whole looks (so tokens every word attends to - attention
  sinks - do not win);
- likelihood shift: how much less likely each observed image token becomes under the edited report
  than under the current one (the model's own "this part would have to change").
- head potential (optional, `head_weight` > 0, weights with a finding head): how far, to first order,
  resampling each token could move the finding head the asked way - where the changed findings' evidence
  sits for the model's own reader.
The top `area` share of tokens is taken and widened by `margin` tokens. A region the user paints (a
pixel mask) replaces them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import ndimage

METHODS = ("combined", "attention", "likelihood", "head")


class _Pipeline(Protocol):  # the part of engines.pipeline.MedimPipeline used here
    grid: int
    image_size: int
    tokenizer: object

    def forward_with_attentions(self, image: np.ndarray, report: str): ...  # noqa: E704
    def image_token_log_likelihood(self, image: np.ndarray, report: str, *, mask_ratio: float = ...,  # noqa: E704
                                   draws: int = ..., seed: int = ...) -> np.ndarray: ...
    def head_potential(self, image: np.ndarray, push: Mapping[str, float]) -> np.ndarray: ...  # noqa: E704


@dataclass(frozen=True)
class RegionScores:
    """Per-token scores (g, g) of each cue (NaN-free, higher = more concerned) and the combined one."""

    attention: np.ndarray
    likelihood: np.ndarray
    combined: np.ndarray
    prior: np.ndarray | None = None
    head: np.ndarray | None = None  # None: not asked for (head_weight 0) or nothing the head knows changed


def _rank01(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(-1)
    order = np.argsort(np.argsort(flat, kind="stable"), kind="stable")
    return (order / max(len(flat) - 1, 1)).reshape(x.shape).astype(np.float32)


def _positions(row: Sequence[int], sentence_ids: Sequence[int]) -> list[int]:
    """Row positions of a sentence's tokens: the window of the row that agrees with the sentence's own
    encoding on most tokens (BPE may split the first word differently in context)."""
    n, m = len(row), len(sentence_ids)
    if m == 0 or n == 0:
        return []
    best, best_off = -1, 0
    for off in range(0, max(n - m, 0) + 1):
        score = sum(1 for k in range(min(m, n - off)) if row[off + k] == sentence_ids[k])
        if score > best:
            best, best_off = score, off
    return list(range(best_off, min(best_off + m, n))) if best > 0 else []


def sentence_attention(pipeline: _Pipeline, image: np.ndarray, report: str, sentences: Sequence[str]) -> np.ndarray:
    """(g, g) attention from the given sentences of `report` to the image tokens, divided by the mean
    attention of all the report's tokens; ones where no sentence is found."""
    g = pipeline.grid
    maps = pipeline.forward_with_attentions(image, report)
    att = maps.text_to_image.mean(axis=(0, 1))  # (n_text, g*g)
    base = att.mean(0) + 1e-8
    tok = pipeline.tokenizer
    pos: list[int] = []
    for s in sentences:
        pos += _positions(maps.text_token_ids, tok.encode(s))
    pos = sorted(set(p for p in pos if p < att.shape[0]))
    if not pos:
        return np.ones((g, g), np.float32)
    return (att[pos].mean(0) / base).reshape(g, g).astype(np.float32)


def score_region(pipeline: _Pipeline, image: np.ndarray, before: str, after: str,
                 removed_sentences: Sequence[str], added_sentences: Sequence[str], *, draws: int = 4,
                 seed: int = 0, findings: Sequence[str] = (), prior_weight: float = 0.5,
                 head_push: Mapping[str, float] | None = None, head_weight: float = 0.0) -> RegionScores:
    """`findings` (the changed ones) bring in an anatomical prior (engines.counterfactual.priors):
    combined = model cues x (1 - prior_weight + prior_weight x prior). With `head_push` ({finding: +1/-1})
    and `head_weight` > 0, the model cues are (1 - head_weight) x (attention + likelihood) / 2 + head_weight
    x head potential, by rank."""
    if not 0 <= head_weight <= 1:
        raise ValueError(f"head_weight must be in [0, 1], got {head_weight}")
    g = pipeline.grid
    att = np.zeros((g, g), np.float32)
    n = 0
    if removed_sentences and before.strip():
        att += sentence_attention(pipeline, image, before, removed_sentences)
        n += 1
    if added_sentences:
        att += sentence_attention(pipeline, image, after, added_sentences)
        n += 1
    att = att / max(n, 1)
    ll_before = pipeline.image_token_log_likelihood(image, before, draws=draws, seed=seed) if before.strip() \
        else np.zeros((g, g), np.float32)
    ll_after = pipeline.image_token_log_likelihood(image, after, draws=draws, seed=seed)
    shift = np.nan_to_num(ll_before - ll_after).astype(np.float32)
    combined = 0.5 * _rank01(att) + 0.5 * _rank01(shift)
    head = None
    if head_push and head_weight > 0:
        head = pipeline.head_potential(image, head_push)
        combined = (1.0 - head_weight) * combined + head_weight * _rank01(head)
    prior = np.ones((g, g), np.float32)
    if findings and prior_weight > 0:
        from engines.counterfactual.priors import finding_prior

        prior = finding_prior(findings, [*removed_sentences, *added_sentences], g)
        combined = combined * (1.0 - prior_weight + prior_weight * prior)
    return RegionScores(att, shift, combined, prior, head)


def widen(mask: np.ndarray, margin: int) -> np.ndarray:
    """The mask grown by `margin` tokens in every direction (8-connected)."""
    m = np.asarray(mask, bool)
    if margin <= 0 or not m.any():
        return m.copy()
    return ndimage.binary_dilation(m, structure=np.ones((3, 3), bool), iterations=int(margin))


def select_tokens(scores: np.ndarray, area: float = 0.15, margin: int = 1, smooth: float = 1.0) -> np.ndarray:
    """About `area` of the tokens (margin included; at least one seed token): the scores are smoothed
    (sigma `smooth` tokens, so the region is a few blobs rather than scattered tokens), the top ones
    taken as seeds, as many as fit once widened by `margin`."""
    if not 0 < area <= 1:
        raise ValueError(f"area must be in (0, 1], got {area}")
    s = np.asarray(scores, np.float64)
    if smooth > 0:
        s = ndimage.gaussian_filter(s, smooth, mode="nearest")
    order = np.argsort(-s.reshape(-1), kind="stable")
    budget = max(1, int(round(area * s.size)))

    def region(k: int) -> np.ndarray:
        seed = np.zeros(s.size, bool)
        seed[order[:k]] = True
        return widen(seed.reshape(s.shape), margin)

    lo, hi = 1, budget  # largest k whose widened region fits the budget (monotone in k)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if region(mid).sum() <= budget:
            lo = mid
        else:
            hi = mid - 1
    return region(lo)


def pixel_mask_to_tokens(mask: np.ndarray, grid: int, min_cover: float = 0.2) -> np.ndarray:
    """A region painted on the image as the viewer shows it (any HxW, True inside) -> (grid, grid)
    token mask, padded to a centred square exactly as the pipeline pads images; a token is in when at
    least `min_cover` of its pixels are."""
    m = np.asarray(mask)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"painted region must be a 2D mask, got shape {m.shape}")
    m = m.astype(np.float32) > 0
    h, w = m.shape
    side = max(h, w)
    sq = np.zeros((side, side), np.float32)
    sq[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = m
    edges = np.linspace(0, side, grid + 1).round().astype(int)
    out = np.zeros((grid, grid), bool)
    for i in range(grid):
        for j in range(grid):
            block = sq[edges[i]:max(edges[i + 1], edges[i] + 1), edges[j]:max(edges[j + 1], edges[j] + 1)]
            out[i, j] = block.size > 0 and float(block.mean()) >= min_cover
    if not out.any():
        raise ValueError("the painted region covers no image token; paint a larger area")
    return out


def tokens_to_pixels(token_mask: np.ndarray, size: int) -> np.ndarray:
    """(g, g) token mask -> (size, size) pixel mask of the model-space image."""
    t = np.asarray(token_mask, bool)
    g = t.shape[0]
    idx = np.minimum((np.arange(size) * g) // size, g - 1)
    return t[np.ix_(idx, idx)]
