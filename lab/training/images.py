"""Radiograph loading for tokenizer training: the manifest's PNGs as one in-memory uint8 tensor.

The VQ needs only pixels, so it reads the manifest directly (2.3k 256x256 images = 150 MB) instead of
waiting on the richer dataset API; normalisation to [-1, 1] happens per batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def manifest_rows(root: str | Path, splits: tuple[str, ...]) -> list[dict]:
    root = Path(root)
    path = root / "manifest.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no manifest.jsonl in {root}")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["split"] in splits]


def load_image_tensor(root: str | Path, splits: tuple[str, ...], size: int = 256) -> tuple[torch.Tensor, list[str]]:
    """(N, 1, size, size) uint8 tensor and the matching image ids."""
    root = Path(root)
    rows = manifest_rows(root, splits)
    arr = np.zeros((len(rows), 1, size, size), dtype=np.uint8)
    for i, r in enumerate(rows):
        im = Image.open(root / r["file"]).convert("L")
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        arr[i, 0] = np.asarray(im)
    return torch.from_numpy(arr), [r["image_id"] for r in rows]


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1.0


def from_model_range(x: torch.Tensor) -> torch.Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
