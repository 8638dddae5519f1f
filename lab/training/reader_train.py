"""Training of the finding reader (engines.reader): a small CNN on lung-field crops, trained against the image-
source shortcut (issue 28).

Objectives, compared by cross-validation on the training folds:
- "bce": plain multi-label BCE;
- "grl": BCE plus a source head behind a gradient-reversal layer (Ganin & Lempitsky): the encoder is pushed to
  features from which the source cannot be told;
- "dro": group DRO (Sagawa et al.) over sources: the loss is a weighted mean over sources whose weights grow
  exponentially with each source's loss, so the worst-served source drives the update.
Samplers: "plain" (uniform) or "balanced" (a source drawn with probability proportional to sqrt(its size)).
Labels a source does not speak to (the COVID collections say nothing of cardiomegaly) are masked out of the loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engines.reader.config import ReaderConfig
from engines.reader.network import ReaderNet
from lab.training.reader_augment import jpeg_roundtrip, style_batch

OBJECTIVES = ("bce", "grl", "dro")
SAMPLERS = ("plain", "balanced")


@dataclass(frozen=True)
class ReaderTrainConfig:
    epochs: int = 14
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 5e-4
    sampler: str = "balanced"
    objective: str = "bce"
    adv_weight: float = 0.3  # grl: weight of the reversed source loss
    dro_step: float = 0.05  # dro: exponentiated-gradient step of the source weights
    jpeg_p: float = 0.3
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; choose one of {OBJECTIVES}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {SAMPLERS}")
        if self.epochs < 1 or self.batch < 2:
            raise ValueError("epochs must be >= 1 and batch >= 2")

    def to_dict(self) -> dict:
        return asdict(self)


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:  # noqa: D102
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        return -ctx.weight * grad, None


def masked_bce(logits: torch.Tensor, y: torch.Tensor, known: torch.Tensor, pos_weight: torch.Tensor | None = None
               ) -> torch.Tensor:
    """Per-row mean BCE over the labels the row's source speaks to (B,)."""
    loss = F.binary_cross_entropy_with_logits(logits, y, reduction="none", pos_weight=pos_weight)
    k = known.float()
    return (loss * k).sum(1) / k.sum(1).clamp_min(1)


def sampling_weights(sources: Sequence[str], how: str) -> np.ndarray:
    src = np.asarray(sources)
    if how == "plain":
        return np.full(len(src), 1.0 / len(src))
    uniq, inv, counts = np.unique(src, return_inverse=True, return_counts=True)
    w = 1.0 / np.sqrt(counts[inv])  # source s drawn with probability ~ sqrt(n_s)
    return w / w.sum()


def train_reader(x: np.ndarray, y: np.ndarray, known: np.ndarray, sources: Sequence[str], rcfg: ReaderConfig,
                 tcfg: ReaderTrainConfig, *, log: Callable[[str], None] = print,
                 cancel: Callable[[], bool] | None = None) -> ReaderNet:
    """x: (N, S, S) uint8 reader inputs (engines.reader.preprocess); y/known: (N, K). Returns the trained net."""
    if x.ndim != 3 or x.shape[1:] != (rcfg.size, rcfg.size):
        raise ValueError(f"reader inputs must be (N, {rcfg.size}, {rcfg.size}), got {x.shape}")
    if y.shape != known.shape or y.shape != (len(x), len(rcfg.findings)):
        raise ValueError(f"labels must be (N, {len(rcfg.findings)})")
    torch.set_num_threads(tcfg.threads)
    torch.manual_seed(tcfg.seed)
    rng = np.random.default_rng(tcfg.seed)
    g = torch.Generator().manual_seed(tcfg.seed)
    net = ReaderNet(rcfg)
    uniq, src_idx = np.unique(np.asarray(sources), return_inverse=True)
    adv = nn.Linear(net.encoder.out_channels, len(uniq)) if tcfg.objective == "grl" else None
    params = list(net.parameters()) + (list(adv.parameters()) if adv is not None else [])
    opt = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    steps_per_epoch = max(1, len(x) // tcfg.batch)
    total = steps_per_epoch * tcfg.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tcfg.lr, total_steps=total, pct_start=0.15)
    probs = sampling_weights(sources, tcfg.sampler)
    yk = torch.from_numpy(np.where(known, y, 0).astype(np.float32))
    kn = torch.from_numpy(known.astype(bool))
    pos = (yk * kn).sum(0)
    neg = ((1 - yk) * kn).sum(0)
    pos_weight = (neg / pos.clamp_min(1)).clamp(1, 10) ** 0.5  # soften rare findings' imbalance
    dro_w = torch.ones(len(uniq)) / len(uniq)
    src_t = torch.from_numpy(src_idx)
    step = 0
    t0 = time.perf_counter()
    net.train()
    for epoch in range(tcfg.epochs):
        running = 0.0
        for _ in range(steps_per_epoch):
            if cancel is not None and cancel():
                raise InterruptedError("reader training cancelled")
            idx = rng.choice(len(x), tcfg.batch, p=probs)
            batch = np.stack([jpeg_roundtrip(x[i], rng, tcfg.jpeg_p) for i in idx])
            xb = style_batch(torch.from_numpy(batch).float().div(255)[:, None], g)
            xb = (xb - 0.5) / 0.25
            fmap = net.feature_map(xb)
            feats = net.pool(fmap)
            logits = net.head(net.dropout(feats))
            per_row = masked_bce(logits, yk[idx], kn[idx], pos_weight)
            if tcfg.objective == "dro":
                s = src_t[idx]
                group_loss = torch.zeros(len(uniq)).index_add(0, s, per_row.detach())
                cnt = torch.zeros(len(uniq)).index_add(0, s, torch.ones(len(idx)))
                seen = cnt > 0
                dro_w = dro_w * torch.exp(tcfg.dro_step * torch.where(seen, group_loss / cnt.clamp_min(1), 0))
                dro_w = dro_w / dro_w.sum()
                row_w = dro_w[s] / cnt[s] * seen.sum()
                loss = (per_row * row_w).sum() / seen.sum()
            else:
                loss = per_row.mean()
            if adv is not None:
                ramp = 2 / (1 + math.exp(-10 * step / total)) - 1  # DANN's schedule
                src_logits = adv(_Reverse.apply(feats, tcfg.adv_weight * ramp))
                loss = loss + F.cross_entropy(src_logits, src_t[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            running += float(loss.detach())
        log(f"epoch {epoch + 1}/{tcfg.epochs}: loss {running / steps_per_epoch:.4f} "
            f"({time.perf_counter() - t0:.0f} s)")
    net.eval()
    return net


@torch.no_grad()
def predict(net: ReaderNet, x: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, K), pooled features (N, D)) of reader inputs x (N, S, S) uint8."""
    net.eval()
    logits, feats = [], []
    for i in range(0, len(x), batch):
        xb = (torch.from_numpy(x[i:i + batch]).float().div(255)[:, None] - 0.5) / 0.25
        f = net.features(xb)
        feats.append(f.numpy())
        logits.append(net.head(f).numpy())
    return np.concatenate(logits), np.concatenate(feats)


def group_folds(groups: Sequence[str], k: int, seed: int = 0) -> np.ndarray:
    """Fold index per image, whole patients (split groups) kept in one fold."""
    uniq = np.unique(np.asarray(groups))
    perm = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = {uniq[j]: int(r % k) for r, j in enumerate(perm)}
    return np.array([fold_of[g_] for g_ in groups])
