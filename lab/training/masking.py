"""Forward (noising) process and the per-batch task mix of training.

Each row gets a task: only text masked (report from image), only image masked (image from report),
both masked (joint), or only the answer masked (VQA). Condition dropout replaces the clean
modality by [MASK] so one model also learns the unconditional distribution classifier-free
guidance needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engines.models.config import MedimConfig
from lab.training.schedule import MaskSchedule

TASK_TEXT, TASK_IMAGE, TASK_BOTH, TASK_ANSWER = 0, 1, 2, 3
TASK_NAMES = ("text", "image", "both", "answer")


@dataclass
class NoisedBatch:
    text_in: torch.Tensor
    image_in: torch.Tensor
    text_target: torch.Tensor  # bool: positions whose clean token is predicted (masked by noise)
    image_target: torch.Tensor
    t: torch.Tensor


def sample_tasks(n: int, is_qa: torch.Tensor, probs: tuple[float, float, float], g: torch.Generator) -> torch.Tensor:
    """Report rows draw text/image/both by `probs`; QA rows are always the answer task."""
    p = torch.tensor(probs, dtype=torch.float)
    tasks = torch.multinomial(p / p.sum(), n, replacement=True, generator=g)
    return torch.where(is_qa, torch.full_like(tasks, TASK_ANSWER), tasks)


def noise_batch(text: torch.Tensor, image: torch.Tensor, prefix_len: torch.Tensor, tasks: torch.Tensor,
                cfg: MedimConfig, schedule: MaskSchedule, g: torch.Generator, cond_drop: float = 0.1,
                t: torch.Tensor | None = None) -> NoisedBatch:
    b = text.shape[0]
    dev = text.device
    if t is None:
        # Stratified t (low-discrepancy, as MDLM) lowers the variance of the ELBO estimate.
        t = ((torch.rand(1, generator=g) + torch.arange(b) / b) % 1.0).to(dev)
        t = t.clamp(1e-3, 1.0)
    p = schedule.mask_prob(t)[:, None]
    noise_text = torch.rand(text.shape, generator=g).to(dev) < p
    noise_img = torch.rand(image.shape, generator=g).to(dev) < p
    pos = torch.arange(cfg.text_len, device=dev)[None]
    free_text = pos >= prefix_len[:, None]

    mask_text = tasks != TASK_IMAGE
    mask_img = (tasks == TASK_IMAGE) | (tasks == TASK_BOTH)
    text_target = noise_text & free_text & mask_text[:, None]
    image_target = noise_img & mask_img[:, None]

    drop = (torch.rand(b, generator=g).to(dev) < cond_drop) & (tasks != TASK_BOTH)
    drop_img = drop & ~mask_img  # conditioning image hidden
    drop_text = drop & (tasks == TASK_IMAGE)  # conditioning report hidden
    text_hidden = text_target | (drop_text[:, None] & torch.ones_like(text_target))
    img_hidden = image_target | (drop_img[:, None] & torch.ones_like(image_target))
    text_in = torch.where(text_hidden, torch.full_like(text, cfg.text_mask_id), text)
    image_in = torch.where(img_hidden, torch.full_like(image, cfg.image_mask_id), image)
    return NoisedBatch(text_in, image_in, text_target, image_target, t)
