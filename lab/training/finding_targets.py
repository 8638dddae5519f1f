"""Per-image finding targets and the loss of the backbone's auxiliary finding head.

The diffusion objective gives little image->finding signal: most masked text is predictable from the other
text, and a question row carries one answer word. The finding head (engines.models.config `findings`) adds a
multi-label loss on every row whose image is fully visible, so the image-token states learn what the
labels say; the text positions then read it through attention.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from engines.labeler.findings import FINDINGS


def choose_findings(samples: Sequence, min_positives: int = 40) -> tuple[str, ...]:
    """CheXpert findings with at least `min_positives` positive images, in the labeler's order: a finding seen
    a handful of times would only teach the head its prior."""
    counts = {k: 0 for k in FINDINGS}
    for s in samples:
        for k, v in s.findings.items():
            if v == 1 and k in counts:
                counts[k] += 1
    return tuple(k for k in FINDINGS if counts[k] >= min_positives)


def finding_targets(samples: Sequence, names: Sequence[str]) -> torch.Tensor:
    """(N, K) float: 1 where the image's labels say the finding is present, else 0 (the sources' label sets
    are exhaustive for what they cover; engines.labeler.sources)."""
    return torch.tensor([[float(s.findings.get(k) == 1) for k in names] for s in samples], dtype=torch.float32)


def finding_loss(logits: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor) -> torch.Tensor | None:
    """Mean BCE over `rows` (bool (B,): rows whose image the model saw unmasked); None when there are none."""
    if logits.shape != targets.shape:
        raise ValueError(f"finding logits {tuple(logits.shape)} do not match targets {tuple(targets.shape)}")
    if not rows.any():
        return None
    return F.binary_cross_entropy_with_logits(logits[rows].float(), targets[rows].float())


def condition_states(labels: torch.Tensor, eligible: torch.Tensor, share: float, g: torch.Generator) -> torch.Tensor:
    """(B, K) conditioning for a batch: the row's labels (1 present, 0 absent) on a random `share` of the
    `eligible` rows (report rows, not question rows), NaN (unknown) elsewhere, so one model learns both the
    conditioned and the unconditioned distribution, as classifier-free guidance's condition dropout does."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share of conditioned rows must be in [0, 1], got {share}")
    told = (torch.rand(labels.shape[0], generator=g) < share) & eligible.cpu()
    states = labels.float().clone()
    states[~told] = float("nan")
    return states
