"""The compiled backbone (engines.models.compiled): the same logits as the torch forward within float tolerance,
compiled off the caller's thread, eager where it cannot be compiled; the onnx runtime falls back to torch when
onnxruntime is missing."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import torch

from engines.models.backbone import MedimBackbone
from engines.models.compiled import CompiledBackbone
from engines.models.config import preset
from engines.models.tiny import make_tiny_checkpoint
from engines.pipeline import MedimPipeline

COMPILE_TIMEOUT_S = 600  # inductor on a busy 2-core machine, first time (its disk cache makes reruns seconds)


def _model() -> MedimBackbone:
    torch.manual_seed(0)
    cfg = preset("tiny", text_vocab_size=60, image_vocab_size=16, findings=("a", "b"), finding_layer=1,
                 finding_condition=True)
    model = MedimBackbone(cfg).eval()
    with torch.no_grad():  # AdaLN starts at zero (identity blocks): give the conditioning some weight
        for name, p in model.named_parameters():
            if "ada" in name or name.startswith("condition_"):
                p.normal_(0, 0.05)
    return model


def _inputs(model: MedimBackbone, batch: int, seed: int = 1):
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(0, cfg.text_vocab_size, (batch, cfg.text_len), generator=g)
    image = torch.randint(0, cfg.image_vocab_size, (batch, cfg.image_len), generator=g)
    return text, image, torch.rand(batch, generator=g), torch.rand(batch, len(cfg.findings), generator=g)


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "inductor"))


@pytest.fixture
def compiled():
    model = _model()
    net = CompiledBackbone(model)
    yield model, net
    net.close()


def test_compiled_logits_match_torch_and_compile_in_the_background(compiled):
    model, net = compiled
    text, image, t, states = _inputs(model, 2)
    rows = torch.arange(3, 9)
    kw = {"heads": "text", "text_rows": rows, "finding_states": states}
    with torch.no_grad():
        first = net(text, image, t, **kw)  # not compiled yet: runs eagerly and asks for this shape class
        assert net.wait(COMPILE_TIMEOUT_S), "the background compile did not finish"
        assert net.error is None
        assert net.compiled_classes == {(2, 2, True, "text")}
        ref = model(text, image, t, **kw)
        torch.testing.assert_close(first.text_logits, ref.text_logits, rtol=0, atol=0)  # the eager call
        # Another batch size >= 2 and other rows run through the same compiled graph (dynamic sizes).
        text3, image3, t3, states3 = _inputs(model, 3, seed=2)
        for args, call_kw in (((text, image, t), kw),
                              ((text3, image3, t3), {"heads": "text", "text_rows": torch.arange(0, 12),
                                                     "finding_states": states3})):
            got, want = net(*args, **call_kw), model(*args, **call_kw)
            assert got.text_logits.shape == want.text_logits.shape
            assert got.image_logits is None
            torch.testing.assert_close(got.text_logits, want.text_logits, rtol=1e-4, atol=1e-4)
            assert not torch.equal(got.text_logits, torch.zeros_like(got.text_logits))
    assert net.compiled_classes == {(2, 2, True, "text")}  # nothing new was asked for


def test_calls_with_gradients_or_attentions_stay_eager(compiled):
    model, net = compiled
    text, image, t, states = _inputs(model, 1)
    out = net(text, image, t, heads="both")  # gradients on (attributions differentiate through the forward)
    assert out.text_logits.requires_grad
    with torch.no_grad():
        att = net(text, image, t, output_attentions=True)
        assert att.attentions is not None and len(att.attentions) == model.config.n_layers
        emb = model.embed_image(image)
        by_embeds = net(text, None, t, image_embeds=emb, heads="text")
        torch.testing.assert_close(by_embeds.text_logits, model(text, image, t, heads="text").text_logits)
    assert net.wait(5) and net.compiled_classes == frozenset()  # none of these asked for a compile


def test_a_failed_compile_leaves_the_torch_forward(tmp_path, caplog):
    """No usable C++ compiler (a frozen bundle, a locked-down workstation): logged once, every call eager."""
    model = _model()
    net = CompiledBackbone(model, options={"cpp.cxx": (None, str(tmp_path / "no-such-compiler"))})
    try:
        text, image, t, states = _inputs(model, 2)
        with caplog.at_level(logging.WARNING, logger="engines.models.compiled"), torch.no_grad():
            net(text, image, t, heads="text", finding_states=states)
            assert net.wait(COMPILE_TIMEOUT_S)
            assert net.error and net.compiled_classes == frozenset()
            out = net(text, image, t, heads="text", finding_states=states)
        assert "running the torch backbone" in caplog.text
        torch.testing.assert_close(out.text_logits, model(text, image, t, heads="text",
                                                          finding_states=states).text_logits, rtol=0, atol=0)
    finally:
        net.close()


def test_onnx_runtime_without_onnxruntime_falls_back_to_torch(tmp_path, monkeypatch, caplog):
    folder = make_tiny_checkpoint(tmp_path / "m")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as in an installation without the package
    with caplog.at_level(logging.WARNING, logger="engines.pipeline"):
        pipe = MedimPipeline.from_pretrained(folder, runtime="onnx", device="cpu")
    assert pipe.runtime == "torch" and "onnxruntime" in pipe.runtime_error
    assert "engine backend 'onnx' unavailable" in caplog.text
    img = np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8)
    ref = MedimPipeline.from_pretrained(folder, device="cpu")
    assert pipe.draft_report([img], steps=3, temperature=0).text == ref.draft_report([img], steps=3,
                                                                                     temperature=0).text


def test_unknown_runtime_is_refused(tmp_path):
    folder = make_tiny_checkpoint(tmp_path / "m")
    with pytest.raises(ValueError, match="torch, onnx, compiled"):
        MedimPipeline.from_pretrained(folder, runtime="tensorrt", device="cpu")


def test_pipeline_compiled_runtime_drafts_as_torch(tmp_path):
    folder = make_tiny_checkpoint(tmp_path / "m")
    compiled = MedimPipeline.from_pretrained(folder, runtime="compiled", device="cpu")
    try:
        img = np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8)
        first = compiled.draft_report([img], steps=3, temperature=0)  # eager while the classes compile
        assert compiled._net.wait(COMPILE_TIMEOUT_S) and compiled._net.error is None
        assert compiled._net.compiled_classes  # the draft shapes asked for at load
        ref = MedimPipeline.from_pretrained(folder, device="cpu").draft_report([img], steps=3, temperature=0)
        assert compiled.runtime == "compiled"
        assert first.text == ref.text == compiled.draft_report([img], steps=3, temperature=0).text
    finally:
        compiled._net.close()
