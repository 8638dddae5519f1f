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
    assert rep["backbone_rows_max_abs_diff"] < 1e-4
    assert json.loads((d / "onnx" / "parity.json").read_text())["weights_sha256"] == rep["weights_sha256"]
    ort_pipe = MedimPipeline.from_pretrained(d, runtime="onnx", device="cpu")
    torch_pipe = MedimPipeline.from_pretrained(d, device="cpu")
    img = np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8)
    a = ort_pipe.draft_report([img], steps=3, temperature=0)
    b = torch_pipe.draft_report([img], steps=3, temperature=0)
    assert a.text == b.text
    grid = torch_pipe.encode_image(img)
    assert np.abs(ort_pipe.decode_tokens(grid).astype(int) - torch_pipe.decode_tokens(grid)).max() <= 1


def test_onnx_drafting_calls_run_the_rows_graph(tmp_path):
    """Drafting asks for the text logits at a slot's rows: the rows graph gives those rows only, as torch does."""
    import torch

    d = make_tiny_checkpoint(tmp_path / "m", findings=("a", "b"), finding_condition=True)
    pipe = MedimPipeline.from_pretrained(d, runtime="onnx", device="cpu")
    assert pipe.runtime == "onnx" and pipe._net.rows_session is not None
    cfg = pipe.model_config
    g = torch.Generator().manual_seed(3)
    text = torch.randint(0, cfg.text_vocab_size, (3, cfg.text_len), generator=g)
    image = torch.randint(0, cfg.image_vocab_size, (3, cfg.image_len), generator=g)
    t, states = torch.rand(3, generator=g), torch.rand(3, 2, generator=g)
    for rows in (torch.arange(2, 5), torch.arange(0, cfg.text_len)):
        got = pipe._net(text, image, t, finding_states=states, heads="text", text_rows=rows)
        with torch.no_grad():
            want = pipe.model(text, image, t, finding_states=states, heads="text", text_rows=rows)
        assert got.image_logits is None and got.text_logits.shape == want.text_logits.shape == (3, len(rows),
                                                                                                 cfg.text_vocab_size)
        torch.testing.assert_close(got.text_logits, want.text_logits, rtol=1e-4, atol=1e-4)


def test_a_gpu_onnxruntime_cannot_use_is_refused(tmp_path):
    """The pipeline then keeps the backbone on the GPU with torch (from_pretrained falls back, logging why)."""
    import onnxruntime as ort
    import pytest
    import torch

    from engines.export.runtime import onnx_runtime

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime runs on CUDA")
    d = make_tiny_checkpoint(tmp_path / "m")
    with pytest.raises(RuntimeError, match="cannot run on cuda"):
        onnx_runtime(None, None, d, "0" * 64, torch.device("cuda"), tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()  # refused before anything was exported
