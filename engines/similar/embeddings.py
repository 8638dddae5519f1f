"""Image embeddings for similar-case search, by name, so an index and its queries always use the same one.

- "image-tokens" (`medim-image-tokens`): the engine's mean-pooled image-token states, what its finding reader
  reads (MedimPipeline.embed); what the Similar studies panel searches by.
- "pixels32": the 32x32 box-downsampled, mean-centred, unit-norm image, the embedding radstation-eval's
  nearest-neighbour baseline retrieves by; sentence drafts may ground on cases found by it (chosen by
  cross-validation, lab.eval.tune_sentences).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

EMBEDDINGS: dict[str, str] = {"image-tokens": "medim-image-tokens", "pixels32": "pixels32"}
PIXELS = 32


def pixels32(image: np.ndarray, size: int = PIXELS) -> np.ndarray:
    """float32 (size*size,): box-downsampled pixels, mean removed, unit L2 norm."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr.mean(axis=2)
    small = np.asarray(Image.fromarray(arr, mode="F").resize((size, size), Image.Resampling.BOX), dtype=np.float32)
    v = small.ravel() - small.mean()
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def index_name(kind: str) -> str:
    if kind not in EMBEDDINGS:
        raise ValueError(f"unknown case embedding {kind!r}; choose one of {list(EMBEDDINGS)}")
    return EMBEDDINGS[kind]
