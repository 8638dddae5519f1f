"""onnxruntime execution path for MedimPipeline (runtime="onnx").

Wraps the exported sessions in callables with the torch modules' signatures, so the sampler and the
jobs stay the same; graphs are exported on first use and reused while the weights hash matches.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from engines.export.onnx_export import (
    BACKBONE_ONNX,
    DECODER_ONNX,
    PARITY_FILE,
    _session,
    export_backbone,
    export_vq_decoder,
)
from engines.models.backbone import BackboneOutput

if TYPE_CHECKING:
    from engines.pipeline import MedimPipeline


class OnnxBackbone:
    """Callable like MedimBackbone(text_ids, image_ids, t) -> BackboneOutput, run by onnxruntime."""

    def __init__(self, path: Path, config) -> None:
        self.session = _session(path)
        self.config = config

    def __call__(self, text_ids: torch.Tensor, image_ids: torch.Tensor, t: torch.Tensor,
                 finding_states: torch.Tensor | None = None, **_: object) -> BackboneOutput:
        dev = text_ids.device
        feed = {"text_ids": text_ids.cpu().numpy().astype(np.int64),
                "image_ids": image_ids.cpu().numpy().astype(np.int64), "t": t.cpu().numpy().astype(np.float32)}
        if self.config.finding_condition:  # the graph always takes them; NaN = not told
            if finding_states is None:
                finding_states = torch.full((text_ids.shape[0], len(self.config.findings)), float("nan"))
            feed["finding_states"] = finding_states.cpu().numpy().astype(np.float32)
        elif finding_states is not None:
            raise ValueError("this model was not trained with finding conditioning")
        lt, li = self.session.run(None, feed)
        return BackboneOutput(torch.from_numpy(lt).to(dev), torch.from_numpy(li).to(dev))


class OnnxDecoder:
    def __init__(self, path: Path) -> None:
        self.session = _session(path)

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"codes": codes.cpu().numpy().astype(np.int64)})[0]
        return torch.from_numpy(out)


def _default_dir(pipe: MedimPipeline) -> Path:
    d = pipe.path / "onnx"
    if os.access(pipe.path, os.W_OK):
        return d
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "radstation" / "onnx"
    return cache / pipe.weights_hash[:16]


def attach_onnx_runtime(pipe: MedimPipeline, onnx_dir: str | Path | None = None) -> dict:
    """Export if needed (or if the weights changed) and switch the pipeline's backbone/decoder to ORT."""
    out = Path(onnx_dir) if onnx_dir is not None else _default_dir(pipe)
    out.mkdir(parents=True, exist_ok=True)
    parity_path = out / PARITY_FILE
    parity = json.loads(parity_path.read_text()) if parity_path.exists() else {}
    if parity.get("weights_sha256") != pipe.weights_hash or not (out / BACKBONE_ONNX).exists() \
            or not (out / DECODER_ONNX).exists():
        parity = {"backbone_max_abs_diff": export_backbone(pipe.model, out / BACKBONE_ONNX),
                  "vq_decoder_max_abs_diff": export_vq_decoder(pipe.vq, out / DECODER_ONNX),
                  "weights_sha256": pipe.weights_hash}
        pipe.model.to(pipe.device)
        pipe.vq.to(pipe.device)
        parity_path.write_text(json.dumps(parity, indent=2))
    pipe._net = OnnxBackbone(out / BACKBONE_ONNX, pipe.model_config)
    pipe._decode = OnnxDecoder(out / DECODER_ONNX)
    pipe.onnx_parity = parity
    return parity
