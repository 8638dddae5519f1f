"""ONNX export of the backbone and the VQ decoder, each checked against torch (max abs difference).

The graphs take the same inputs as the torch modules (text ids, image ids, t) -> (text logits, image
logits) and (codes) -> image, with a dynamic batch axis, so the sampler runs unchanged on either; a second
backbone graph gives drafting's text logits at the rows it reads (text_rows, a dynamic axis too).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engines.models.backbone import MedimBackbone
from engines.tokenizers.vq import VQVAE

BACKBONE_ONNX, DECODER_ONNX, PARITY_FILE = "backbone.onnx", "vq_decoder.onnx", "parity.json"
ROWS_ONNX = "backbone_text_rows.onnx"  # the drafting graph: text logits at the rows read
# 20: Gelu is one op, which onnxruntime fuses (FastGelu); at 17 it was five that it ran one by one (the full graph
# 12.1 -> 10.7 ms at batch 1, 53.4 -> 44.0 at batch 4, 1 thread; docs/engine_speed.md)
OPSET = 20


class _BackboneGraph(nn.Module):
    def __init__(self, model: MedimBackbone) -> None:
        super().__init__()
        self.model = model

    def forward(self, text_ids: torch.Tensor, image_ids: torch.Tensor, t: torch.Tensor,
                finding_states: torch.Tensor | None = None):
        out = self.model(text_ids, image_ids, t, finding_states=finding_states)
        return out.text_logits, out.image_logits


class _RowsGraph(nn.Module):
    """What drafting asks of the backbone: the text logits at `text_rows` only (heads="text"), which lets the last
    block work out just those rows (MedimBackbone.forward)."""

    def __init__(self, model: MedimBackbone) -> None:
        super().__init__()
        self.model = model

    def forward(self, text_ids: torch.Tensor, image_ids: torch.Tensor, t: torch.Tensor, text_rows: torch.Tensor,
                finding_states: torch.Tensor | None = None):
        return self.model(text_ids, image_ids, t, finding_states=finding_states, heads="text",
                          text_rows=text_rows).text_logits


class _DecoderGraph(nn.Module):
    def __init__(self, vq: VQVAE) -> None:
        super().__init__()
        self.vq = vq

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.vq.decoder(self.vq.lookup(codes)).clamp(-1, 1)


def _export(module: nn.Module, args: tuple, path: Path, names_in: list[str], names_out: list[str],
            opset: int = OPSET, dynamic: dict[str, dict[int, str]] | None = None) -> None:
    dyn = {n: {0: "batch"} for n in names_in + names_out} | (dynamic or {})
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two workers exporting at once never read half a file
    torch.onnx.export(module.eval(), args, str(tmp), input_names=names_in, output_names=names_out,
                      dynamic_axes=dyn, opset_version=opset, dynamo=False)
    os.replace(tmp, path)


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # As many threads as torch was given (the worker picks them by load): onnxruntime's default, every core,
    # spins at its barriers on a busy workstation as torch's OpenMP pool did (issue 27).
    opts.intra_op_num_threads, opts.inter_op_num_threads = max(torch.get_num_threads(), 1), 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
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
def export_backbone_rows(model: MedimBackbone, path: str | Path, batch: int = 2, seed: int = 0) -> float:
    """Write the drafting graph (text logits at the rows read; batch and rows dynamic); return the max abs logit
    difference to torch on random inputs, at other batch and row counts than the export's."""
    path = Path(path)
    cfg = model.config
    model = model.cpu().eval()
    g = torch.Generator().manual_seed(seed)

    def inputs(b: int, start: int, stop: int) -> tuple:
        text = torch.randint(0, cfg.text_vocab_size, (b, cfg.text_len), generator=g)
        image = torch.randint(0, cfg.image_vocab_size + 1, (b, cfg.image_len), generator=g)
        args = (text, image, torch.rand(b, generator=g), torch.arange(start, min(stop, cfg.text_len)))
        if cfg.finding_condition:
            args = (*args, torch.rand(b, len(cfg.findings), generator=g).round())
        return args

    graph = _RowsGraph(model)
    names = ["text_ids", "image_ids", "t", "text_rows", *(["finding_states"] if cfg.finding_condition else [])]
    _export(graph, inputs(batch, 1, 1 + cfg.text_len // 2), path, names, ["text_logits"], OPSET,
            {"text_rows": {0: "rows"}, "text_logits": {0: "batch", 1: "rows"}})
    session = _session(path)
    worst = 0.0
    for b, start, stop in ((1, 0, 3), (batch + 1, cfg.text_len // 4, cfg.text_len)):
        args = inputs(b, start, stop)
        got = session.run(None, {n: a.numpy() for n, a in zip(names, args, strict=True)})[0]
        worst = max(worst, float(np.abs(graph(*args).numpy() - got).max()))
    return worst


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
              "backbone_rows_max_abs_diff": export_backbone_rows(model, out / ROWS_ONNX),
              "vq_decoder_max_abs_diff": export_vq_decoder(vq, out / DECODER_ONNX),
              "weights_sha256": weights_hash(model_dir), "opset": OPSET}
    (out / PARITY_FILE).write_text(json.dumps(report, indent=2))
    return report
