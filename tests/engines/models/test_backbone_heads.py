"""Only the output heads a step needs: the same logits as the full forward, and the same draft."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import engines.sampling.unmask as unmask_module
from engines.models.backbone import MedimBackbone
from engines.sampling.unmask import SamplingOptions, unmask
from tests.support.backbone import backbone_inputs, tiny_backbone


def _model() -> MedimBackbone:
    return tiny_backbone()


def _inputs(m: MedimBackbone, b: int = 2):
    return backbone_inputs(m, b)


def test_one_head_gives_the_full_forwards_logits_for_its_segment():
    m = _model()
    text, image, t = _inputs(m)
    with torch.no_grad():
        full = m(text, image, t)
        only_text = m(text, image, t, heads="text")
        only_image = m(text, image, t, heads="image")
    assert only_text.image_logits is None and only_image.text_logits is None
    torch.testing.assert_close(only_text.text_logits, full.text_logits)
    torch.testing.assert_close(only_image.image_logits, full.image_logits)


def test_unknown_heads_is_a_clear_error():
    m = _model()
    with pytest.raises(ValueError, match="heads must be one of"):
        m(*_inputs(m), heads="txt")


def _draft(m: MedimBackbone, image: torch.Tensor):
    cfg = m.config
    text = torch.full((image.shape[0], cfg.text_len), cfg.text_mask_id)
    return unmask(m, text, image, opts=SamplingOptions(steps=6, temperature=1.0, guidance=1.5),
                  generator=torch.Generator().manual_seed(3),
                  uncond=(torch.full_like(text, cfg.text_mask_id), torch.full_like(image, cfg.image_mask_id)))


def test_a_draft_with_the_image_given_skips_image_logits_and_is_unchanged(monkeypatch):
    m = _model()
    _, image, _ = _inputs(m)
    asked: list[str] = []
    forward = m.forward

    def spy(*args, heads="both", **kw):
        asked.append(heads)
        return forward(*args, heads=heads, **kw)

    monkeypatch.setattr(m, "forward", spy)
    fast = _draft(m, image)
    assert asked and set(asked) == {"text"}  # no image logits computed at any step, guided pass included
    monkeypatch.setattr(unmask_module, "_heads_needed", lambda tm, im: "both")
    slow = _draft(m, image)
    assert torch.equal(fast.text, slow.text)
    torch.testing.assert_close(fast.text_confidence, slow.text_confidence, equal_nan=True)
    torch.testing.assert_close(fast.text_entropy, slow.text_entropy, equal_nan=True)


@pytest.mark.parametrize("finding_layer", [1, 2])
def test_text_rows_give_the_full_forwards_logits_at_those_rows(finding_layer):
    """With `text_rows` the last block and the text head work on those rows only (within 1e-5 of the full
    forward there); where a finding head reads the last block's output (finding_layer = n_layers), or with
    attentions, every row is worked out and the rows are cut from the result."""
    base = _model()
    m = MedimBackbone(replace(base.config, findings=("Cardiomegaly", "Edema"), finding_layer=finding_layer)).eval()
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "ada" in n:
                p.normal_(0, 0.1)
    text, image, t = _inputs(m)
    rows = torch.tensor([1, 2, 3, 7])
    ran: list[str] = []
    last = m.blocks[-1]
    rows_only = last.forward_rows

    def spy(*args, **kw):
        ran.append("rows")
        return rows_only(*args, **kw)

    last.forward_rows = spy
    with torch.no_grad():
        full = m(text, image, t, heads="text")
        cut = m(text, image, t, heads="text", text_rows=rows)
        both = m(text, image, t, heads="both", text_rows=rows)
        attn = m(text, image, t, heads="text", text_rows=rows, output_attentions=True)
    assert cut.text_logits.shape == (text.shape[0], len(rows), m.config.text_vocab_size)
    for out in (cut, both, attn):
        torch.testing.assert_close(out.text_logits, full.text_logits[:, rows], atol=1e-5, rtol=0)
    torch.testing.assert_close(cut.finding_logits, full.finding_logits)
    assert ran == (["rows"] if finding_layer < len(m.blocks) else [])
