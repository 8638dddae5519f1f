"""ONNX export of the backbone and the VQ decoder, each checked against torch (max abs difference).

The graphs take the same inputs as the torch modules (text ids, image ids, t) -> (text logits, image
logits) and (codes) -> image, with a dynamic batch axis, so the sampler runs unchanged on either; a second
backbone graph gives drafting's text logits at the rows it reads (text_rows, a dynamic axis too). Runtime
"onnx-int8" drafts with an int8 copy of that graph (`quantize_rows`: onnxruntime's dynamic quantisation of the
blocks' weight matrix products, checked against torch with a tolerance, `rows_parity`).
"""

from __future__ import annotations

import json
import logging
import os
import re
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
INT8_ROWS_ONNX = "backbone_text_rows.int8.onnx"  # runtime onnx-int8's drafting graph (quantize_rows)
# Bumped whenever quantize_rows quantises differently, so graphs made by an older recipe are made again.
INT8_RECIPE = 1
# The int8 drafting graph is used only while its largest logit difference to torch on random inputs (rows_parity)
# is at most this fraction of the largest reference logit; more means the quantisation went wrong (the shipped
# weights: ~0.03, docs/engine_speed.md fourth round), and runtime onnx-int8 drafts with the float32 graph instead.
INT8_RELATIVE_TOLERANCE = 0.1
# The matrix products quantised: every block's qkv, attention output and MLP projections (their weights are
# constants). The attention products themselves (QK^T, AV; both operands activations), the last block's query and
# key/value products (its weight is sliced in the graph), the time/condition/modulation products (one row per image)
# and the text head stay float32: quantising attention as well gained 0-5% more per forward and doubled the error.
_INT8_NODES = re.compile(r"/(qkv|proj|mlp\.0|mlp\.2)/MatMul$")


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
    graph = _RowsGraph(model)
    _export(graph, _rows_inputs(cfg, g, batch, 1, 1 + cfg.text_len // 2), path, _rows_input_names(cfg), ["text_logits"],
            OPSET, {"text_rows": {0: "rows"}, "text_logits": {0: "batch", 1: "rows"}})
    return _rows_against_torch(graph, _session(path), g, ((1, 0, 3), (batch + 1, cfg.text_len // 4, cfg.text_len)))[0]


def _rows_input_names(cfg) -> list[str]:
    return ["text_ids", "image_ids", "t", "text_rows", *(["finding_states"] if cfg.finding_condition else [])]


def _rows_against_torch(graph: _RowsGraph, session, g: torch.Generator,
                        shapes: tuple[tuple[int, int, int], ...]) -> tuple[float, float]:
    """(largest |torch - graph| text logit, largest |torch| logit) over random inputs drawn from `g`, one per
    (batch, first row, stop) in `shapes`; the difference is inf once the graph gives a non-finite logit."""
    cfg = graph.model.config
    names = _rows_input_names(cfg)
    diff = scale = 0.0
    for b, start, stop in shapes:
        args = _rows_inputs(cfg, g, b, start, stop)
        got = session.run(None, {n: a.numpy() for n, a in zip(names, args, strict=True)})[0]
        ref = graph(*args).numpy()
        scale = max(scale, float(np.abs(ref).max()))
        if not np.isfinite(got).all():
            return float("inf"), scale
        diff = max(diff, float(np.abs(ref - got).max()))
    return diff, scale


def _rows_inputs(cfg, g: torch.Generator, b: int, start: int, stop: int) -> tuple:
    text = torch.randint(0, cfg.text_vocab_size, (b, cfg.text_len), generator=g)
    image = torch.randint(0, cfg.image_vocab_size + 1, (b, cfg.image_len), generator=g)
    args = (text, image, torch.rand(b, generator=g), torch.arange(start, min(stop, cfg.text_len)))
    if cfg.finding_condition:
        args = (*args, torch.rand(b, len(cfg.findings), generator=g).round())
    return args


def quantize_rows(fp32_path: str | Path, path: str | Path) -> int:
    """Write an int8 copy of the drafting graph (onnxruntime dynamic quantisation: int8 per-channel weights,
    uint8 activations quantised per call, MatMulInteger, which MLAS runs with AVX-512 VNNI where the CPU has it) of
    the blocks' weight matrix products (_INT8_NODES); return how many were quantised. Written atomically."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    nodes = [n.name for n in onnx.load(str(fp32_path)).graph.node
             if n.op_type == "MatMul" and _INT8_NODES.search(n.name)]
    if not nodes:
        raise RuntimeError(f"no block matrix products found to quantise in {Path(fp32_path).name}")
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    root = logging.getLogger()
    hint = _DropPreprocessHint()
    root.addFilter(hint)  # the quantiser's advice to run its shape pre-processing first, on the root logger
    try:
        quantize_dynamic(str(fp32_path), str(tmp), per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"], nodes_to_quantize=nodes,
                         extra_options={"MatMulConstBOnly": True})
        os.replace(tmp, path)
    finally:
        root.removeFilter(hint)
        tmp.unlink(missing_ok=True)
    return len(nodes)


class _DropPreprocessHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@torch.no_grad()
def rows_parity(model: MedimBackbone, path: str | Path, seed: int = 1) -> dict[str, float]:
    """A drafting graph's text logits against torch's on random inputs (batch 1 and 3, a slot's rows and the later
    three quarters of the text): the largest absolute difference and the largest reference logit."""
    model = model.cpu().eval()
    diff, scale = _rows_against_torch(_RowsGraph(model), _session(Path(path)), torch.Generator().manual_seed(seed),
                                      ((1, 0, 20), (3, model.config.text_len // 4, model.config.text_len)))
    return {"max_abs_diff": diff, "max_abs_logit": scale}


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
