"""Finding conditioning on the AdaLN input: zero at start, NaN means unknown, bad shapes are clear errors."""

from __future__ import annotations

import pytest
import torch

from engines.models.backbone import MedimBackbone
from engines.models.checkpoint import load_backbone, save_backbone
from engines.models.config import MedimConfig, preset


def _cfg(**kw) -> MedimConfig:
    base = preset("tiny", text_vocab_size=50, image_vocab_size=16, text_mask_id=1, text_pad_id=0)
    return MedimConfig.from_dict(base.to_dict() | {"findings": ["Edema", "Pneumonia"], "finding_layer": 1} | kw)


def _inputs(cfg, b=2):
    return torch.full((b, cfg.text_len), 5), torch.full((b, cfg.image_len), 3), torch.full((b,), 0.5)


def test_conditioning_changes_predictions_and_unknown_adds_nothing(tmp_path):
    cfg = _cfg(finding_condition=True)
    torch.manual_seed(0)
    model = MedimBackbone(cfg)
    text, image, t = _inputs(cfg)
    told = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # Zero-initialised: a freshly conditioned model is the unconditioned one.
    assert torch.equal(model(text, image, t).text_logits, model(text, image, t, finding_states=told).text_logits)
    with torch.no_grad():
        for blk in model.blocks:
            blk.ada.weight.normal_(0, 0.05)
        model.condition_present.normal_(0, 1.0)
        model.condition_absent.normal_(0, 1.0)
    plain = model(text, image, t).text_logits
    cond = model(text, image, t, finding_states=told).text_logits
    assert not torch.allclose(cond[0], cond[1])  # different findings, different predictions
    with torch.no_grad():  # the input route alone also reaches the predictions
        fresh = MedimBackbone(cfg)
        fresh.load_state_dict(model.state_dict())
        fresh.condition_present.zero_()
        fresh.condition_absent.zero_()
        fresh.condition_input_present.normal_(0, 1.0)
    via_input = fresh(text, image, t, finding_states=told).text_logits
    assert not torch.allclose(via_input, fresh(text, image, t).text_logits)
    unknown = torch.full((2, 2), float("nan"))
    assert torch.allclose(model(text, image, t, finding_states=unknown).text_logits, plain)
    save_backbone(tmp_path, model)
    back, _ = load_backbone(tmp_path)
    assert back.config.finding_condition
    assert torch.equal(back(text, image, t, finding_states=told).text_logits, cond)


def test_bad_conditioning_is_a_clear_error():
    with pytest.raises(ValueError, match="needs a list of findings"):
        MedimConfig.from_dict(_cfg().to_dict() | {"findings": [], "finding_condition": True})
    cfg = _cfg(finding_condition=True)
    model = MedimBackbone(cfg)
    text, image, t = _inputs(cfg)
    with pytest.raises(ValueError, match=r"finding_states must be \(B, 2\)"):
        model(text, image, t, finding_states=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="rows for 2 sequences"):
        model(text, image, t, finding_states=torch.zeros(1, 2))
    plain = MedimBackbone(_cfg())
    with pytest.raises(ValueError, match="not trained with finding conditioning"):
        plain(text, image, t, finding_states=torch.zeros(2, 2))
