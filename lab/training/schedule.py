"""Absorbing-state noise schedules (MDLM, continuous time): mask probability and ELBO weight of t."""

from __future__ import annotations

import math

import torch


class MaskSchedule:
    """`mask_prob(t)` = 1 - alpha_t; `loss_weight(t)` = -alpha'_t / (1 - alpha_t) (MDLM's ELBO weight)."""

    name = "base"

    def mask_prob(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class LogLinearSchedule(MaskSchedule):
    """sigma(t) = -log(1 - (1 - eps) t): alpha_t = 1 - (1 - eps) t, weight = 1 / t."""

    name = "loglinear"

    def __init__(self, eps: float = 1e-3) -> None:
        self.eps = eps

    def mask_prob(self, t: torch.Tensor) -> torch.Tensor:
        return (1 - self.eps) * t

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 / t.clamp_min(1e-4)


class CosineSchedule(MaskSchedule):
    """alpha_t = cos(pi t / 2): masks slowly at first, as MaskGIT's sampling schedule."""

    name = "cosine"

    def mask_prob(self, t: torch.Tensor) -> torch.Tensor:
        return 1 - torch.cos(math.pi / 2 * t)

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        a = torch.cos(math.pi / 2 * t)
        return (math.pi / 2) * torch.sin(math.pi / 2 * t) / (1 - a).clamp_min(1e-4)


SCHEDULES: dict[str, type[MaskSchedule]] = {"loglinear": LogLinearSchedule, "cosine": CosineSchedule}


def get_schedule(name: str) -> MaskSchedule:
    if name not in SCHEDULES:
        raise ValueError(f"unknown mask schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    return SCHEDULES[name]()
