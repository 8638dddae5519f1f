"""Backbone: really bidirectional, AdaLN-conditioned on t, persistence bit-exact, clear load errors."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from engines.models.backbone import MedimBackbone
from engines.models.checkpoint import CheckpointError, load_backbone, save_backbone
from engines.models.config import MedimConfig, preset
from engines.models.tiny import make_tiny_checkpoint
from tests.support.backbone import backbone_inputs, tiny_backbone


def _model(seed: int = 0) -> MedimBackbone:
    return tiny_backbone(seed)


def _inputs(m: MedimBackbone, b: int = 1):
    return backbone_inputs(m, b)


def test_no_causal_mask_later_token_changes_earlier_prediction():
    m = _model()
    text, image, t = _inputs(m)
    with torch.no_grad():
        a = m(text, image, t)
        text2 = text.clone()
        text2[0, -1] = (text2[0, -1] + 1) % m.config.text_vocab_size
        b = m(text2, image, t)
        image2 = image.clone()
        image2[0, -1] = (image2[0, -1] + 1) % m.config.image_vocab_size
        c = m(text, image2, t)
    assert not torch.allclose(a.text_logits[0, 0], b.text_logits[0, 0])  # last text token -> first position
    assert not torch.allclose(a.text_logits[0, 0], c.text_logits[0, 0])  # last image token -> first text


def test_adaln_starts_as_identity_and_timestep_matters_once_trained():
    torch.manual_seed(0)
    fresh = MedimBackbone(preset("tiny", text_vocab_size=50, image_vocab_size=16)).eval()
    text, image, _ = _inputs(fresh)
    with torch.no_grad():
        x0 = fresh(text, image, torch.zeros(1)).text_logits
        x1 = fresh(text, image, torch.ones(1)).text_logits
    assert torch.equal(x0, x1)  # zero-initialised modulation: t has no effect yet
    m = _model()
    with torch.no_grad():
        assert not torch.allclose(m(text, image, torch.zeros(1)).text_logits, m(text, image, torch.ones(1)).text_logits)


def test_attentions_are_exposed_and_full():
    m = _model()
    out = m(*_inputs(m), output_attentions=True)
    assert len(out.attentions) == m.config.n_layers
    a = out.attentions[0]
    assert a.shape == (1, m.config.n_heads, m.config.seq_len, m.config.seq_len)
    assert (a[0, 0].triu(1) > 0).any()  # attends to later positions


def test_bad_input_shapes_are_clear_errors():
    m = _model()
    text, image, t = _inputs(m)
    with pytest.raises(ValueError, match="text_ids"):
        m(text[:, :3], image, t)
    with pytest.raises(ValueError, match="image_ids"):
        m(text, image[:, :3], t)
    with pytest.raises(ValueError, match="t must be"):
        m(text, image, torch.ones(3))


def test_save_load_round_trip_is_bit_exact(tmp_path):
    m = _model()
    save_backbone(tmp_path, m)
    again, cfg = load_backbone(tmp_path)
    assert cfg["model"] == m.config.to_dict()
    for (k, a), (_, b) in zip(m.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    inputs = _inputs(m)
    with torch.no_grad():
        assert torch.equal(m(*inputs).text_logits, again(*inputs).text_logits)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_backbone(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="config.json"):
        load_backbone(tmp_path)
    d = make_tiny_checkpoint(tmp_path / "ck")
    cfg = json.loads((d / "config.json").read_text())
    cfg["model"]["d_model"] = 64  # a checkpoint of another config
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not match"):
        load_backbone(d)
    (d / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not a radstation-medim"):
        load_backbone(d)


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        MedimConfig(text_vocab_size=10, image_vocab_size=4, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="unknown model size"):
        preset("huge", text_vocab_size=10, image_vocab_size=4)
    with pytest.raises(ValueError, match="unknown model config"):
        MedimConfig.from_dict(replace(preset("tiny", text_vocab_size=10, image_vocab_size=4)).to_dict() | {"x": 1})


def test_finding_logits_alone_match_the_full_forward():
    torch.manual_seed(0)
    m = MedimBackbone(preset("tiny", text_vocab_size=50, image_vocab_size=16, findings=("No Finding", "Edema"),
                             finding_layer=1)).eval()
    text, image, t = _inputs(m, 2)
    with torch.no_grad():
        full = m(text, image, t).finding_logits
        alone = m.finding_logits(text, image, t)
        via_embeds = m.finding_logits(text, None, t, image_embeds=m.embed_image(image))
    assert torch.equal(alone, full) and torch.equal(via_embeds, full)
    with pytest.raises(ValueError, match="no finding head"):
        _model().finding_logits(text[:, :_model().config.text_len], image, t)
