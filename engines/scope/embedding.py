"""The image embedding the input gate measures distances in: `embed(images) -> (N, D) float32`.

The built-in engine's is the mean of its image-token states after the blocks its finding head reads
(`finding_layer`; with the report fully masked at t = 1, as when drafting starts): the representation the
engine's own reading comes from. Another reader plugs in by giving the gate another `embed` and refitting
the statistics (`radstation-eval scope fit --embedding NAME`); the statistics name the embedding they were
fitted on, and the gate refuses to compare an embedding with statistics of another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Embed = Callable[[Sequence[np.ndarray]], np.ndarray]
MEDIM_EMBEDDING = "medim-image-tokens"


def medim_embedding_name(pipe: Any) -> str:
    """'medim-image-tokens@layer2': which states of the built-in engine the embedding pools."""
    return f"{MEDIM_EMBEDDING}@layer{_layer(pipe)}"


def _layer(pipe: Any) -> int:
    cfg = pipe.model_config
    return int(cfg.finding_layer) if cfg.findings and cfg.finding_layer else int(cfg.n_layers)


def medim_embed(pipe: Any, images: Sequence[np.ndarray], batch: int = 32) -> np.ndarray:
    """(N, d_model) float32: mean-pooled image-token states of `pipe`'s backbone at its finding layer."""
    import torch

    model = pipe._torch_model()
    cfg = pipe.model_config
    layer = _layer(pipe)
    out = []
    for i in range(0, len(images), batch):
        codes = [pipe._codes(im) for im in images[i:i + batch]]
        img = torch.tensor(codes, dtype=torch.long, device=pipe.device)
        text = torch.full((len(codes), cfg.text_len), cfg.text_mask_id, dtype=torch.long, device=pipe.device)
        with torch.no_grad():
            x, c = model._inputs(text, img, torch.ones(len(codes), device=pipe.device), None, None)
            for blk in model.blocks[:layer]:
                x, _ = blk(x, c, False)
        out.append(x[:, cfg.text_len:].mean(1).float().cpu().numpy())
    if not out:
        return np.zeros((0, int(cfg.d_model)), np.float32)
    return np.concatenate(out).astype(np.float32)


def reader_embedding_name(reader: Any) -> str:
    """'finding-reader@<weights hash>': statistics fitted on another reader are not used with this one."""
    return f"finding-reader@{str(getattr(reader, 'weights_hash', '') or 'unknown')[:16]}"


def medim_embedders(pipe: Any) -> dict[str, Embed]:
    """Every embedding the built-in engine can give the gate, by name: the finding reader's pooled CNN features
    when the weights ship a reader (MedimPipeline.image_embedding), and the backbone's mean image-token states.
    The gate uses the one its shipped statistics were fitted on (engines.scope.guard.build_gate)."""
    out: dict[str, Embed] = {}
    reader = getattr(pipe, "reader", None)
    if reader is not None and hasattr(pipe, "image_embedding"):
        out[reader_embedding_name(reader)] = lambda images: np.asarray(pipe.image_embedding(list(images)), np.float32)
    out[medim_embedding_name(pipe)] = lambda images: medim_embed(pipe, list(images))
    return out


def medim_embedder(pipe: Any, kind: str = "default") -> tuple[str, Embed]:
    """(name, embed) of one of the engine's embeddings: `kind` "reader" (the finding reader's features; an error
    without a reader), "backbone" (the backbone's image-token states) or "default" (the reader's when shipped)."""
    reader = getattr(pipe, "reader", None)
    if kind == "reader" and reader is None:
        raise ValueError("these weights ship no finding reader: no reader embedding")
    found = medim_embedders(pipe)
    name = medim_embedding_name(pipe) if kind == "backbone" or reader is None else reader_embedding_name(reader)
    return name, found[name]
