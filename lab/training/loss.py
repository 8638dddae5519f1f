"""MDLM objective: weighted cross-entropy on masked positions, per-modality weights (text 1, image 0.6).

Question/answer rows hold one or two answer words and ~100 trailing [PAD]s, so under a plain per-token sum
their answers are a fraction of a percent of the text loss and the model learns one answer for every
question (measured: p(yes) 0.05 for "Is there pneumonia?" on train images whose answer is yes in 54%).
`answer_weight` scales the non-[PAD] answer tokens of those rows, as LLaDA's SFT normalises by answer length.

`teacher` logits (a frozen copy of the model a fine-tuning run starts from) turn the rows in `soft_rows` into
distillation rows: their masked positions learn the teacher's distribution instead of the data (soft
cross-entropy, "learning without forgetting"), so teaching the model to answer does not move its drafts
and images (measured: plain fine-tuning on question rows alone made it stop writing reports).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lab.training.masking import NoisedBatch
from lab.training.schedule import MaskSchedule


def diffusion_loss(text_logits: torch.Tensor, image_logits: torch.Tensor, text: torch.Tensor, image: torch.Tensor,
                   batch: NoisedBatch, schedule: MaskSchedule, text_weight: float = 1.0, image_weight: float = 0.6,
                   pad_id: int | None = None, pad_weight: float = 0.3, max_weight: float = 20.0,
                   answer_rows: torch.Tensor | None = None, answer_weight: float = 1.0,
                   teacher: tuple[torch.Tensor, torch.Tensor] | None = None,
                   soft_rows: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    w = schedule.loss_weight(batch.t).clamp(max=max_weight)[:, None]
    ce_t = F.cross_entropy(text_logits.transpose(1, 2).float(), text, reduction="none")
    ce_i = F.cross_entropy(image_logits.transpose(1, 2).float(), image, reduction="none")
    if teacher is not None:
        if soft_rows is None:
            raise ValueError("teacher logits need soft_rows: which rows learn the teacher instead of the data")
        rows = soft_rows[:, None]
        ce_t = torch.where(rows, _soft_ce(text_logits, teacher[0]), ce_t)
        ce_i = torch.where(rows, _soft_ce(image_logits, teacher[1]), ce_i)
    tw = batch.text_target.float()
    if pad_id is not None:  # trailing [PAD]s are many and easy; they must not drown the words
        tw = tw * torch.where(text == pad_id, pad_weight, 1.0)
    # The answer words of question rows (their trailing [PAD]s excluded).
    words = None if answer_rows is None else answer_rows[:, None] & ((text != pad_id) if pad_id is not None else True)
    if words is not None and answer_weight != 1.0:
        tw = tw * torch.where(words, answer_weight, 1.0)
    lt = (ce_t * tw * w).sum() / text.numel()
    li = (ce_i * batch.image_target.float() * w).sum() / image.numel()
    # Unweighted per-token CE on masked positions: the number to watch in the log.
    nt = batch.text_target.sum().clamp_min(1)
    ni = batch.image_target.sum().clamp_min(1)
    out = {"loss": text_weight * lt + image_weight * li,
           "text_ce": (ce_t * batch.text_target).sum() / nt, "image_ce": (ce_i * batch.image_target).sum() / ni}
    if words is not None:  # CE of the answer words alone: whether questions are being learnt
        a = batch.text_target & words
        if a.any():
            out["answer_ce"] = (ce_t * a).sum() / a.sum()
    return out


def _soft_ce(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Per-position cross-entropy of the student against the teacher's distribution (KL + teacher entropy)."""
    p = torch.softmax(teacher_logits.float(), -1)
    return -(p * torch.log_softmax(student_logits.float(), -1)).sum(-1)
