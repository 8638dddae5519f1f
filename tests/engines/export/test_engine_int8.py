"""Runtime onnx-int8: drafting's rows graph quantised to int8 on first use, its parity with torch checked, and the
float32 onnx graph drafting instead whenever quantising fails or parity does not hold."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import pytest
import torch

from engines.export import runtime as rt
from engines.export.onnx_export import INT8_ROWS_ONNX, PARITY_FILE, ROWS_ONNX
from engines.models.tiny import make_tiny_checkpoint
from engines.pipeline import MedimPipeline

IMG = np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("int8") / "m", findings=("a", "b"), finding_condition=True)


def _rows_file(pipe: MedimPipeline) -> str:
    return pipe._net.rows_session._model_path


def _ops(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_int8_runtime_quantises_the_drafting_graph_and_checks_parity(folder, tmp_path):
    pipe = MedimPipeline.from_pretrained(folder, runtime="onnx-int8", device="cpu", onnx_dir=tmp_path)
    assert pipe.runtime == "onnx-int8" and pipe.runtime_error == ""
    assert _rows_file(pipe).endswith(INT8_ROWS_ONNX)
    assert "MatMulInteger" in _ops(tmp_path / INT8_ROWS_ONNX) and "MatMulInteger" not in _ops(tmp_path / ROWS_ONNX)
    rec = json.loads((tmp_path / PARITY_FILE).read_text())["rows_int8"]
    cfg = pipe.model_config
    # qkv, proj and the two MLP products of every block (the tiny model's finding head reads the last block, so
    # that block runs every row; where it works out only the rows read, its sliced qkv stays float32: 15 of 16)
    assert cfg.finding_layer == cfg.n_layers
    assert rec["ok"] and rec["quantized_matmuls"] == 4 * cfg.n_layers
    assert 0 < rec["max_abs_diff"] <= rec["tolerance"] == pytest.approx(0.1 * rec["max_abs_logit"])
    assert rec["weights_sha256"] == pipe.weights_hash and rec["quantizer"].startswith("onnxruntime ")
    # The drafting call runs int8: close to torch, not equal to it (the float32 graph agrees to 1e-4).
    g = torch.Generator().manual_seed(3)
    text = torch.randint(0, cfg.text_vocab_size, (2, cfg.text_len), generator=g)
    image = torch.randint(0, cfg.image_vocab_size, (2, cfg.image_len), generator=g)
    t, states, rows = torch.rand(2, generator=g), torch.rand(2, 2, generator=g).round(), torch.arange(3, 9)
    got = pipe._net(text, image, t, finding_states=states, heads="text", text_rows=rows).text_logits
    with torch.no_grad():
        want = pipe.model(text, image, t, finding_states=states, heads="text", text_rows=rows).text_logits
    diff = float((got - want).abs().max())
    assert 1e-5 < diff <= 0.1 * float(want.abs().max())
    # The other jobs (both heads) keep the float32 graph.
    full = pipe._net(text, image, t, finding_states=states)
    with torch.no_grad():
        ref = pipe.model(text, image, t, finding_states=states)
    torch.testing.assert_close(full.image_logits, ref.image_logits, rtol=1e-4, atol=1e-4)
    assert pipe.draft_report([IMG], steps=3, temperature=0).text


def test_the_int8_graph_is_reused_and_made_again_when_the_quantiser_changes(folder, tmp_path, monkeypatch):
    MedimPipeline.from_pretrained(folder, runtime="onnx-int8", device="cpu", onnx_dir=tmp_path)
    made = (tmp_path / INT8_ROWS_ONNX).stat().st_mtime_ns
    calls = []
    real = rt.quantize_rows
    monkeypatch.setattr(rt, "quantize_rows", lambda *a: calls.append(a) or real(*a))
    assert MedimPipeline.from_pretrained(folder, runtime="onnx-int8", device="cpu", onnx_dir=tmp_path).runtime == \
        "onnx-int8"
    assert calls == [] and (tmp_path / INT8_ROWS_ONNX).stat().st_mtime_ns == made
    monkeypatch.setattr(rt, "_quantizer_version", lambda: "onnxruntime 99.0")
    assert MedimPipeline.from_pretrained(folder, runtime="onnx-int8", device="cpu", onnx_dir=tmp_path).runtime == \
        "onnx-int8"
    assert len(calls) == 1
    assert json.loads((tmp_path / PARITY_FILE).read_text())["rows_int8"]["quantizer"] == "onnxruntime 99.0"
    monkeypatch.setattr(rt, "INT8_RECIPE", 99)
    MedimPipeline.from_pretrained(folder, runtime="onnx-int8", device="cpu", onnx_dir=tmp_path)
    assert len(calls) == 2 and not list(tmp_path.glob("*.tmp"))  # written atomically


def test_failed_parity_drafts_with_the_float32_graph(folder, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(rt, "INT8_RELATIVE_TOLERANCE", 0.0)  # int8 never matches torch exactly
    with caplog.at_level(logging.WARNING):
        pipe = MedimPipeline.from_pretrained(folder, runtime="onnx-int8", device="cpu", onnx_dir=tmp_path)
    assert pipe.runtime == "onnx" and "failed parity" in pipe.runtime_error
    assert _rows_file(pipe).endswith(ROWS_ONNX) and "drafting with the float32 onnx graph" in caplog.text
    assert json.loads((tmp_path / PARITY_FILE).read_text())["rows_int8"]["ok"] is False
    fp32 = MedimPipeline.from_pretrained(folder, runtime="onnx", device="cpu", onnx_dir=tmp_path)
    assert pipe.draft_report([IMG], steps=3, temperature=0).text == fp32.draft_report([IMG], steps=3,
                                                                                       temperature=0).text
    # The verdict is kept: the next start does not quantise again, and still drafts in float32.
    monkeypatch.setattr(rt, "quantize_rows", lambda *a: pytest.fail("quantised again"))
    again = MedimPipeline.from_pretrained(folder, runtime="onnx-int8", device="cpu", onnx_dir=tmp_path)
    assert again.runtime == "onnx" and "failed parity" in again.runtime_error


def test_failed_quantisation_drafts_with_the_float32_graph(folder, tmp_path, monkeypatch, caplog):
    def broken(*_):
        raise RuntimeError("no quantiser here")

    monkeypatch.setattr(rt, "quantize_rows", broken)
    with caplog.at_level(logging.WARNING):
        pipe = MedimPipeline.from_pretrained(folder, runtime="onnx-int8", device="cpu", onnx_dir=tmp_path)
    assert pipe.runtime == "onnx" and "int8 quantisation failed: RuntimeError: no quantiser here" == \
        pipe.runtime_error
    assert _rows_file(pipe).endswith(ROWS_ONNX) and "onnx-int8" in caplog.text
    assert "rows_int8" not in json.loads((tmp_path / PARITY_FILE).read_text())
    assert pipe.draft_report([IMG], steps=3, temperature=0).text


def test_a_damaged_int8_graph_is_not_used_and_made_again(folder, tmp_path):
    MedimPipeline.from_pretrained(folder, runtime="onnx-int8", device="cpu", onnx_dir=tmp_path)
    (tmp_path / INT8_ROWS_ONNX).write_bytes(b"not a graph")
    pipe = MedimPipeline.from_pretrained(folder, runtime="onnx-int8", device="cpu", onnx_dir=tmp_path)
    assert pipe.runtime == "onnx" and "cannot open the int8 drafting graph" in pipe.runtime_error
    assert MedimPipeline.from_pretrained(folder, runtime="onnx-int8", device="cpu", onnx_dir=tmp_path).runtime == \
        "onnx-int8"


def test_int8_on_a_gpu_drafts_with_the_float32_graph(folder, tmp_path):
    why = rt._int8_rows(None, tmp_path, {}, torch.device("cuda"))
    assert why == (None, "int8 drafting runs on the CPU only, not cuda")


def test_a_cpu_without_vnni_drafts_with_the_float32_graph(folder, tmp_path, monkeypatch):
    """int8 was measured with VNNI only; elsewhere the float32 graph drafts (the default must be safe everywhere)."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:
        from numpy.core import _multiarray_umath as umath
    features = dict(umath.__cpu_features__, AVX512VNNI=False, AVXVNNI=False)
    monkeypatch.setattr(umath, "__cpu_features__", features)
    assert "no VNNI" in rt._cpu_int8_dot()
    monkeypatch.setattr(rt, "quantize_rows", lambda *a: pytest.fail("quantised without VNNI"))
    pipe = MedimPipeline.from_pretrained(folder, runtime="onnx-int8", device="cpu", onnx_dir=tmp_path)
    assert pipe.runtime == "onnx" and "no VNNI" in pipe.runtime_error and _rows_file(pipe).endswith(ROWS_ONNX)
    monkeypatch.setattr(umath, "__cpu_features__", dict(features, AVXVNNI=True))
    assert rt._cpu_int8_dot() == ""


def test_the_setting_and_the_backend_know_onnx_int8(folder):
    from app.settings_schema import BY_KEY, validate
    from engines.backends.registry import create_backend

    spec = BY_KEY["engine_backend"]
    assert validate(spec, "onnx-int8") == "" and "one of onnx-int8, onnx, compiled, torch" in validate(spec, "int8")
    assert spec.default == "onnx-int8"
    be = create_backend("diffusion", path=folder, device="cpu", backend="onnx-int8")
    assert be.describe()["runtime"] == "onnx-int8" and be.describe()["runtime_error"] == ""
    with pytest.raises(ValueError, match="unknown precision"):
        rt.onnx_runtime(None, None, folder, "0" * 64, "cpu", precision="int4")
