"""ONNX export of backbone and VQ decoder: numerical parity and the onnxruntime path of the pipeline."""

from __future__ import annotations

import json

import numpy as np

from engines.export.onnx_export import export_model_folder
from engines.models.tiny import make_tiny_checkpoint
from engines.pipeline import MedimPipeline


def test_onnx_parity_and_runtime_path(tmp_path):
    d = make_tiny_checkpoint(tmp_path / "m")
    rep = export_model_folder(d)
    assert rep["backbone_max_abs_diff"] < 1e-4 and rep["vq_decoder_max_abs_diff"] < 1e-4
    assert json.loads((d / "onnx" / "parity.json").read_text())["weights_sha256"] == rep["weights_sha256"]
    ort_pipe = MedimPipeline.from_pretrained(d, runtime="onnx", device="cpu")
    torch_pipe = MedimPipeline.from_pretrained(d, device="cpu")
    img = np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8)
    a = ort_pipe.draft_report([img], steps=3, temperature=0)
    b = torch_pipe.draft_report([img], steps=3, temperature=0)
    assert a.text == b.text
    grid = torch_pipe.encode_image(img)
    assert np.abs(ort_pipe.decode_tokens(grid).astype(int) - torch_pipe.decode_tokens(grid)).max() <= 1
