"""A tiny training work folder (tokenizers + corpus) for tests of the training code: runs in seconds."""

from __future__ import annotations

from pathlib import Path

import torch

from engines.models.tiny import TINY_TEXT_LEN, TINY_VQ, tiny_tokenizer
from engines.tokenizers.vq import VQVAE
from lab.training.corpus import build_corpus


def make_tiny_workdir(directory: str | Path, n_images: int = 24, seed: int = 0) -> Path:
    """A training work folder (tokenizers + corpus.pt) with synthetic image codes whose content
    depends on the report (two classes), so a few training steps have something to learn."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    tok = tiny_tokenizer()
    tok.save(directory)
    VQVAE(TINY_VQ).save(directory)
    n_codes, grid = TINY_VQ.codebook_size, TINY_VQ.grid
    cls = torch.arange(n_images) % 2
    base = torch.stack([torch.arange(grid * grid) % (n_codes // 2), n_codes // 2 + torch.arange(grid * grid) % 4])
    codes = base[cls].clone()
    flip = torch.rand(codes.shape, generator=g) < 0.1
    codes[flip] = torch.randint(0, n_codes, (int(flip.sum()),), generator=g)
    reports = [(k, "The lungs are clear." if c == 0 else "Small left pleural effusion.",
                "No acute cardiopulmonary abnormality." if c == 0 else "Mild pulmonary edema.")
               for k, c in enumerate(cls.tolist())]
    qas = [(k, "Is there a pleural effusion?", "no" if c == 0 else "yes") for k, c in enumerate(cls.tolist())]
    corpus = build_corpus(tok, codes, [f"img{k}" for k in range(n_images)], reports, qas, TINY_TEXT_LEN)
    corpus.label_names, corpus.labels = ["Pleural Effusion"], cls[:, None].float()  # the finding head's target
    corpus.save(directory / "corpus.pt")
    return directory
