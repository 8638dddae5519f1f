"""How much finding information the VQ token grid holds: a model of the engine's size trained directly as a
multi-label finding classifier on the train split's token grids, scored by val AUROC per finding.

Why: the engine's yes/no answers barely depend on the image (per-question AUROC of p(yes) 0.4-0.62). This
probe tells whether the tokens (and a backbone this size) are the limit or the training signal is: when a
probe trained for minutes on the same tokens ranks findings well, the image is there to be read and the
diffusion objective gives too little image->finding signal.

    python -m lab.eval.token_probe --work runs/ft --arch transformer --minutes 6 --threads 2

`--work` is a training work folder (corpus.pt, with jittered views if prepared with --augment).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lab.eval.auroc import auroc

FINDINGS = ("Lung Opacity", "Pneumonia", "No Finding", "Atelectasis", "Cardiomegaly", "Pleural Effusion",
            "Lung Lesion", "Edema", "Consolidation")


class TokenTransformer(nn.Module):
    """The engine's block shape (pre-norm, bidirectional), mean-pooled into one logit per finding."""

    def __init__(self, vocab: int, length: int, n_out: int, d: int = 160, layers: int = 4, heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, length, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, 0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, n_out)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(codes) + self.pos).mean(1))


class TokenConv(nn.Module):
    """Token embeddings laid out on their grid, three convolutions, global pooling."""

    def __init__(self, vocab: int, grid: int, n_out: int, d: int = 64) -> None:
        super().__init__()
        self.grid, self.embed = grid, nn.Embedding(vocab, d)
        self.net = nn.Sequential(
            nn.Conv2d(d, 96, 3, padding=1), nn.GELU(), nn.Conv2d(96, 128, 3, padding=1, stride=2), nn.GELU(),
            nn.Conv2d(128, 160, 3, padding=1, stride=2), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Dropout(0.2), nn.Linear(160, n_out))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        e = self.embed(codes).view(len(codes), self.grid, self.grid, -1).permute(0, 3, 1, 2)
        return self.net(e)


def probe(train_views: torch.Tensor, train_labels: torch.Tensor, val_codes: torch.Tensor, val_labels: np.ndarray,
          *, arch: str, vocab: int, minutes: float | None = None, steps: int | None = None, batch: int = 64,
          seed: int = 0) -> dict:
    """`train_views` (V, N, L): each step draws images and one of their views. Returns AUROC per label column."""
    if minutes is None and steps is None:
        raise ValueError("give minutes or steps")
    torch.manual_seed(seed)
    n_out, length = train_labels.shape[1], train_views.shape[-1]
    if arch == "transformer":
        model: nn.Module = TokenTransformer(vocab, length, n_out)
    elif arch == "conv":
        model = TokenConv(vocab, int(round(length ** 0.5)), n_out)
    else:
        raise ValueError(f"unknown arch {arch!r}; use transformer or conv")
    opt = torch.optim.AdamW(model.parameters(), 5e-4, weight_decay=0.05)
    g = torch.Generator().manual_seed(seed)
    t0, step = time.monotonic(), 0
    model.train()
    while (steps is None or step < steps) and (minutes is None or time.monotonic() - t0 < minutes * 60):
        idx = torch.randint(0, train_views.shape[1], (batch,), generator=g)
        view = torch.randint(0, train_views.shape[0], (batch,), generator=g)
        loss = nn.functional.binary_cross_entropy_with_logits(model(train_views[view, idx]), train_labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    model.eval()
    with torch.no_grad():
        scores = torch.sigmoid(model(val_codes)).numpy()
    aucs = [auroc(val_labels[:, j], scores[:, j]) for j in range(n_out)]
    valid = [a for a in aucs if a is not None]
    return {"arch": arch, "steps": step, "seconds": round(time.monotonic() - t0, 1), "auroc": aucs,
            "macro_auroc": float(np.mean(valid)) if valid else None}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.eval.token_probe", description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, required=True, help="training work folder with corpus.pt")
    p.add_argument("--model", type=Path, default=None, help="model folder whose VQ encodes val (default: shipped)")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--arch", default="transformer", choices=("transformer", "conv"))
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from engines.default_weights import DEFAULT_WEIGHTS
    from engines.pipeline import MedimPipeline
    from lab.data.cxr import load_cxr
    from lab.training.corpus import Corpus
    from lab.training.finding_targets import finding_targets

    corpus = Corpus.load(args.work / "corpus.pt")
    ds = load_cxr(args.data, splits=("train", "val"))
    by_id = {s.image_id: s for s in ds}

    missing = [i for i in corpus.image_ids if i not in by_id]
    if missing:
        print(f"error: {len(missing)} corpus images are not in the data folder (e.g. {missing[0]})", file=sys.stderr)
        return 2
    train_labels = finding_targets([by_id[i] for i in corpus.image_ids], FINDINGS)
    views = corpus.images[None] if corpus.views is None else torch.cat([corpus.images[None], corpus.views])
    pipe = MedimPipeline.from_pretrained(args.model or DEFAULT_WEIGHTS, device="cpu")
    val = [s for s in ds if s.split == "val"]
    val_codes = torch.tensor(np.stack([pipe.encode_image(s.load_image()).reshape(-1) for s in val]))
    val_labels = finding_targets(val, FINDINGS).numpy()
    res = probe(views, train_labels, val_codes, val_labels, arch=args.arch, vocab=pipe.vq.config.codebook_size,
                minutes=args.minutes)
    print(f"Token probe ({args.arch}, {res['steps']} steps, {res['seconds']} s, {len(views) - 1} jittered views, "
          f"{len(val)} val images)\n\n| finding | val positives | AUROC |\n|---|---:|---:|")
    for k, a, y in zip(FINDINGS, res["auroc"], val_labels.sum(0), strict=True):
        print(f"| {k} | {int(y)} | {'n/a' if a is None else f'{a:.3f}'} |")
    print(f"| macro | | {res['macro_auroc']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
