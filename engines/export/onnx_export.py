"""ONNX export of the backbone and the VQ decoder, each checked against torch (max abs difference).

The graphs take the same inputs as the torch modules (text ids, image ids, t) -> (text logits, image
logits) and (codes) -> image, with a dynamic batch axis, so the sampler runs unchanged on either.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engines.models.backbone import MedimBackbone
from engines.tokenizers.vq import VQVAE

BACKBONE_ONNX, DECODER_ONNX, PARITY_FILE = "backbone.onnx", "vq_decoder.onnx", "parity.json"
OPSET = 17


class _BackboneGraph(nn.Module):
    def __init__(self, model: MedimBackbone) -> None:
        super().__init__()
        self.model = model

    def forward(self, text_ids: torch.Tensor, image_ids: torch.Tensor, t: torch.Tensor,
                finding_states: torch.Tensor | None = None):
        out = self.model(text_ids, image_ids, t, finding_states=finding_states)
        return out.text_logits, out.image_logits


class _DecoderGraph(nn.Module):
    def __init__(self, vq: VQVAE) -> None:
        super().__init__()
        self.vq = vq

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.vq.decoder(self.vq.lookup(codes)).clamp(-1, 1)


def _export(module: nn.Module, args: tuple, path: Path, names_in: list[str], names_out: list[str]) -> None:
    dyn = {n: {0: "batch"} for n in names_in + names_out}
    torch.onnx.export(module.eval(), args, str(path), input_names=names_in, output_names=names_out,
                      dynamic_axes=dyn, opset_version=OPSET, dynamo=False)


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    return ort.InferenceSession(str(path), opts, providers=providers)


@torch.no_grad()
def export_backbone(model: MedimBackbone, path: str | Path, batch: int = 2, seed: int = 0) -> float:
    """Write the ONNX graph; return the max abs logit difference to torch on random inputs."""
    path = Path(path)
    cfg = model.config
    model = model.cpu().eval()
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(0, cfg.text_vocab_size, (batch, cfg.text_len), generator=g)
    image = torch.randint(0, cfg.image_vocab_size + 1, (batch, cfg.image_len), generator=g)
    t = torch.rand(batch, generator=g)
    graph = _BackboneGraph(model)
    args, names = (text, image, t), ["text_ids", "image_ids", "t"]
    if cfg.finding_condition:  # a conditioned model's graph takes the finding states too (NaN = unknown)
        states = torch.rand(batch, len(cfg.findings), generator=g).round()
        states[0, 0] = float("nan")
        args, names = (*args, states), [*names, "finding_states"]
    _export(graph, args, path, names, ["text_logits", "image_logits"])
    ref = graph(*args)
    got = _session(path).run(None, {n: a.numpy() for n, a in zip(names, args, strict=True)})
    return float(max(np.abs(r.numpy() - o).max() for r, o in zip(ref, got, strict=True)))


@torch.no_grad()
def export_vq_decoder(vq: VQVAE, path: str | Path, batch: int = 2, seed: int = 0) -> float:
    path = Path(path)
    vq = vq.cpu().eval()
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, vq.config.codebook_size, (batch, vq.config.grid, vq.config.grid), generator=g)
    graph = _DecoderGraph(vq)
    _export(graph, (codes,), path, ["codes"], ["image"])
    got = _session(path).run(None, {"codes": codes.numpy()})[0]
    return float(np.abs(graph(codes).numpy() - got).max())


def export_model_folder(model_dir: str | Path, out: str | Path | None = None) -> dict:
    """Export both graphs of a model folder into `out` (default <model_dir>/onnx) with parity.json."""
    from engines.models.checkpoint import load_backbone, weights_hash
    from engines.tokenizers.vq import VQVAE as _VQ

    model_dir = Path(model_dir)
    out = Path(out) if out is not None else model_dir / "onnx"
    out.mkdir(parents=True, exist_ok=True)
    model, _ = load_backbone(model_dir)
    vq = _VQ.load(model_dir)
    report = {"backbone_max_abs_diff": export_backbone(model, out / BACKBONE_ONNX),
              "vq_decoder_max_abs_diff": export_vq_decoder(vq, out / DECODER_ONNX),
              "weights_sha256": weights_hash(model_dir), "opset": OPSET}
    (out / PARITY_FILE).write_text(json.dumps(report, indent=2))
    return report
