"""onnxruntime execution path for MedimPipeline (runtime="onnx").

Wraps the exported sessions in callables with the torch modules' signatures, so the sampler and the
jobs stay the same; graphs are exported on first use and reused while the weights hash matches. It is
given the pipeline's parts and hands back the callables; the pipeline installs them itself, so this
module never imports the pipeline (an import-linter contract keeps the two out of a cycle).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.export.onnx_export import (
    BACKBONE_ONNX,
    DECODER_ONNX,
    OPSET,
    PARITY_FILE,
    ROWS_ONNX,
    _session,
    export_backbone,
    export_backbone_rows,
    export_vq_decoder,
)
from engines.models.backbone import BackboneOutput


class OnnxBackbone:
    """Callable like MedimBackbone(text_ids, image_ids, t) -> BackboneOutput, run by onnxruntime: drafting's calls
    (heads="text" with text_rows) by the rows graph, every other by the full one."""

    def __init__(self, path: Path, config, rows_path: Path | None = None) -> None:
        self.session = _session(path)
        self.rows_session = _session(rows_path) if rows_path is not None else None
        self.config = config

    def __call__(self, text_ids: torch.Tensor, image_ids: torch.Tensor, t: torch.Tensor,
                 finding_states: torch.Tensor | None = None, heads: str = "both",
                 text_rows: torch.Tensor | None = None, **_: object) -> BackboneOutput:
        dev = text_ids.device
        feed = {"text_ids": text_ids.cpu().numpy().astype(np.int64),
                "image_ids": image_ids.cpu().numpy().astype(np.int64), "t": t.cpu().numpy().astype(np.float32)}
        if self.config.finding_condition:  # the graph always takes them; NaN = not told
            if finding_states is None:
                finding_states = torch.full((text_ids.shape[0], len(self.config.findings)), float("nan"))
            feed["finding_states"] = finding_states.cpu().numpy().astype(np.float32)
        elif finding_states is not None:
            raise ValueError("this model was not trained with finding conditioning")
        if heads == "text" and text_rows is not None and self.rows_session is not None:
            feed["text_rows"] = text_rows.cpu().numpy().astype(np.int64)
            return BackboneOutput(torch.from_numpy(self.rows_session.run(None, feed)[0]).to(dev), None)
        lt, li = self.session.run(None, feed)
        return BackboneOutput(torch.from_numpy(lt).to(dev), torch.from_numpy(li).to(dev))


class OnnxDecoder:
    def __init__(self, path: Path) -> None:
        self.session = _session(path)

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"codes": codes.cpu().numpy().astype(np.int64)})[0]
        return torch.from_numpy(out)


@dataclass
class OnnxRuntime:
    """The onnxruntime stand-ins for a pipeline's backbone and VQ decoder, and the export's parity figures."""

    backbone: OnnxBackbone
    decoder: OnnxDecoder
    parity: dict[str, Any]


def _default_dir(model_path: Path, weights_hash: str) -> Path:
    d = model_path / "onnx"
    if os.access(model_path, os.W_OK):
        return d
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "radstation" / "onnx"
    return cache / weights_hash[:16]


def _check_device(device: Any) -> None:
    """onnxruntime runs where the pipeline's device is: the CPU, or a CUDA GPU through onnxruntime-gpu. A GPU that
    onnxruntime cannot use is refused, so the pipeline keeps the backbone on it with torch instead of running it on
    the CPU."""
    import onnxruntime as ort

    kind = torch.device(device).type
    if kind == "cpu" or (kind == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers()):
        return
    raise RuntimeError(f"this onnxruntime cannot run on {kind} (for CUDA install onnxruntime-gpu); "
                       "the backbone stays on it with torch")


def onnx_runtime(model: torch.nn.Module, vq: Any, model_path: Path, weights_hash: str, device: Any,
                 onnx_dir: str | Path | None = None) -> OnnxRuntime:
    """Export the backbone and decoder if needed (or if the weights or the graphs' opsets changed) and open them in
    onnxruntime.

    `model`/`vq` are moved back to `device` after an export; `onnx_dir` defaults to `<model_path>/onnx`, or
    a per-user cache named by the weights hash when the model folder is read-only."""
    _check_device(device)
    out = Path(onnx_dir) if onnx_dir is not None else _default_dir(Path(model_path), weights_hash)
    out.mkdir(parents=True, exist_ok=True)
    parity_path = out / PARITY_FILE
    try:
        parity = json.loads(parity_path.read_text()) if parity_path.exists() else {}
    except (OSError, ValueError):  # unreadable or half written by another worker: export again
        parity = {}
    made_by = {"weights_sha256": weights_hash, "opset": OPSET}
    if any(parity.get(k) != v for k, v in made_by.items()) or not all(
            (out / f).exists() for f in (BACKBONE_ONNX, ROWS_ONNX, DECODER_ONNX)):
        parity = {"backbone_max_abs_diff": export_backbone(model, out / BACKBONE_ONNX),
                  "backbone_rows_max_abs_diff": export_backbone_rows(model, out / ROWS_ONNX),
                  "vq_decoder_max_abs_diff": export_vq_decoder(vq, out / DECODER_ONNX),
                  **made_by}
        model.to(device)
        vq.to(device)
        tmp = parity_path.with_name(f"{PARITY_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(parity, indent=2))
        os.replace(tmp, parity_path)
    return OnnxRuntime(OnnxBackbone(out / BACKBONE_ONNX, model.config, out / ROWS_ONNX), OnnxDecoder(out / DECODER_ONNX),
                       parity)
