"""The engine as the judge: how likely the model finds a candidate sentence in the next slot of this study's
report, given the image and the sentences already committed.

The text row is the committed sentences followed by [MASK] everywhere else (t = the masked share, as during
drafting). One forward pass gives every masked position's distribution, so every candidate is scored from
the same pass: the mean log-probability of its tokens placed at the slot's positions (the one-step term of
the diffusion ELBO, per token so that long and short sentences compare). With `pmi` a second pass with the
image masked gives the same score without the image; their difference says how much the image, rather
than the language prior, supports the sentence. Several views average their log-probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


class EngineScorer:
    def __init__(self, net: Callable, text_len: int, text_mask_id: int, image_mask_id: int,
                 codes: Sequence[Sequence[int]], device: torch.device, told: Sequence[float] | None = None,
                 pmi: bool = False, before_forward: Callable[[int], None] | None = None) -> None:
        if not codes:
            raise ValueError("the scorer needs at least one image")
        self.net, self.text_len, self.mask_id = net, int(text_len), int(text_mask_id)
        self.device = device
        image = torch.tensor([list(c) for c in codes], dtype=torch.long, device=device)
        self.views = image.shape[0]
        if pmi:
            image = torch.cat([image, torch.full_like(image[:1], int(image_mask_id))])
        self.image, self.pmi = image, pmi
        self.told = None if told is None else torch.tensor([list(told)] * image.shape[0], dtype=torch.float32,
                                                            device=device)
        self.forwards = 0
        self.before_forward = before_forward  # progress/cancel hook, called with the forwards done so far

    @torch.no_grad()
    def slot_logp(self, prefix: Sequence[int], rows: tuple[int, int] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(text_len, V) log-probabilities with the image, and without it when `pmi` (else None); with `rows`
        (start, stop) only those text positions' (stop - start, V): the distributions are per position, so the
        rows are the same numbers as the full tensor's, and the backbone's last block and output head work out
        only those rows (which may round differently in the last bits)."""
        if len(prefix) >= self.text_len:
            raise ValueError("the committed text fills the whole text segment")
        if self.before_forward is not None:
            self.before_forward(self.forwards)
        row = list(prefix) + [self.mask_id] * (self.text_len - len(prefix))
        text = torch.tensor([row] * self.image.shape[0], dtype=torch.long, device=self.device)
        t = torch.full((text.shape[0],), (self.text_len - len(prefix)) / max(self.text_len - 1, 1),
                       device=self.device).clamp(1e-3, 1.0)
        kw = {} if self.told is None else {"finding_states": self.told}
        wanted = None if rows is None else torch.arange(rows[0], rows[1], device=self.device)
        logits = self.net(text, self.image, t, heads="text", text_rows=wanted, **kw).text_logits
        if rows is not None and logits.shape[1] != rows[1] - rows[0]:  # a runtime that gives every position (ONNX)
            logits = logits[:, rows[0]:rows[1]]
        logp = torch.log_softmax(logits.float(), -1).cpu()
        self.forwards += 1
        # One view's distribution is already normalised; several views' mean is renormalised.
        cond = logp[0] if self.views == 1 else torch.log_softmax(logp[: self.views].mean(0), -1)
        return cond, (logp[self.views] if self.pmi else None)

    def score(self, prefix: Sequence[int], candidates: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean token log-probability of each candidate in the slot after `prefix` (with the image; and
        without it when `pmi`). Candidates that do not fit before the end of the segment get -inf."""
        start = len(prefix)
        width = max((len(c) for c in candidates), default=0)
        rows = (start, max(min(start + width, self.text_len), start + 1))  # the positions _gather reads
        cond, uncond = self.slot_logp(prefix, rows)
        return _gather(cond, start, candidates, self.text_len, rows[0]), (
            None if uncond is None else _gather(uncond, start, candidates, self.text_len, rows[0]))


def _gather(logp: torch.Tensor, start: int, candidates: Sequence[Sequence[int]], text_len: int,
            first_row: int = 0) -> np.ndarray:
    """Mean log-probability of each candidate placed at `start`; `logp` holds the text positions from `first_row`."""
    n = len(candidates)
    if n == 0:
        return np.zeros(0, np.float64)
    # Built in numpy and handed over once: filling a tensor row by row cost ~10 tensor ops per candidate
    # (hundreds per slot), about a tenth of a sentence draft's CPU time.
    lens_np = np.fromiter((len(c) for c in candidates), dtype=np.int64, count=n)
    ids_np = np.zeros((n, max(int(lens_np.max()), 1)), dtype=np.int64)
    for i, c in enumerate(candidates):
        ids_np[i, : len(c)] = c
    ids, lens = torch.from_numpy(ids_np), torch.from_numpy(lens_np)
    pos = start + torch.arange(ids.shape[1])
    valid = (torch.arange(ids.shape[1])[None] < lens[:, None])
    fits = (start + lens) <= text_len - 2  # room for [IMPRESSION]/[SEP] after it
    lp = logp[(pos.clamp_max(text_len - 1) - first_row)[None].expand(n, -1), ids]
    total = torch.where(valid, lp, torch.zeros_like(lp)).sum(1) / lens.clamp_min(1)
    total = torch.where(fits & (lens > 0), total, torch.full_like(total, -float("inf")))
    return total.double().numpy()
