"""Training with finding conditioning: the model learns to write what it is told, and fine-tuning an
unconditioned model adds the conditioning without touching its weights."""

from __future__ import annotations

import pytest
import torch

from engines.diffusion.layout import report_row
from engines.models.checkpoint import load_backbone
from engines.models.tiny import TINY_TEXT_LEN, tiny_tokenizer
from lab.training.finding_targets import condition_states
from lab.training.tiny import make_tiny_workdir
from lab.training.trainer import TrainConfig, train


def test_condition_states_tell_a_share_of_eligible_rows():
    labels = torch.tensor([[1.0, 0.0]] * 400)
    eligible = torch.arange(400) % 2 == 0
    s = condition_states(labels, eligible, 0.5, torch.Generator().manual_seed(0))
    told = ~torch.isnan(s).all(1)
    assert not told[~eligible].any()  # question rows are never told
    assert 0.35 < told[eligible].float().mean() < 0.65
    assert torch.equal(s[told], labels[told])
    with pytest.raises(ValueError, match="share"):
        condition_states(labels, eligible, 1.5, torch.Generator())


def _report_logp(model, tok, findings: str, impression: str, told: float) -> float:
    """log p(report | no image, told the effusion state) with every report token masked once at t=1."""
    cfg = model.config
    ids = torch.tensor([report_row(tok, findings, impression, TINY_TEXT_LEN).ids])
    keep = (ids == cfg.text_pad_id)
    text = torch.where(keep, ids, torch.full_like(ids, cfg.text_mask_id))
    image = torch.full((1, cfg.image_len), cfg.image_mask_id)
    with torch.no_grad():
        logp = torch.log_softmax(model(text, image, torch.ones(1), finding_states=torch.tensor([[told]])).text_logits, -1)
    return float(logp[0].gather(-1, ids[0][:, None])[~keep[0]].sum())


def test_a_conditioned_model_writes_what_it_is_told(tmp_path):
    work = make_tiny_workdir(tmp_path)
    train(work, TrainConfig(size="tiny", batch=16, max_steps=120, lr=3e-3, warmup=5, progress=False,
                            finding_weight=1.0, finding_condition=0.5, cond_drop=0.5))
    model, _ = load_backbone(work)
    assert model.config.finding_condition
    tok = tiny_tokenizer()
    sick = ("Small left pleural effusion.", "Mild pulmonary edema.")
    well = ("The lungs are clear.", "No acute cardiopulmonary abnormality.")
    # With the image hidden only the told state separates the two reports.
    assert _report_logp(model, tok, *sick, 1.0) > _report_logp(model, tok, *sick, 0.0) + 1.0
    assert _report_logp(model, tok, *well, 0.0) > _report_logp(model, tok, *well, 1.0) + 1.0


def test_fine_tuning_an_unconditioned_model_adds_conditioning_and_keeps_its_weights(tmp_path):
    src = make_tiny_workdir(tmp_path / "src")
    train(src, TrainConfig(size="tiny", batch=8, max_steps=2, progress=False, finding_weight=1.0))
    start, _ = load_backbone(src)
    work = make_tiny_workdir(tmp_path / "ft")
    train(work, TrainConfig(size="tiny", batch=8, max_steps=1, lr=1e-9, warmup=1, progress=False,
                            init_from=str(src), finding_condition=1.0, new_lr_scale=1e6))
    tuned, _ = load_backbone(work)
    assert tuned.config.finding_condition and tuned.config.findings == start.config.findings
    kept = {k: v for k, v in tuned.state_dict().items() if not k.startswith("condition_")}
    assert all(torch.allclose(v, start.state_dict()[k], atol=1e-5) for k, v in kept.items())
    # The new layers learn at new_lr_scale x lr (Adam's first step moves each by about its lr).
    moved = torch.cat([tuned.condition_present.flatten(), tuned.condition_absent.flatten()]).abs().max()
    assert 1e-4 < float(moved) < 1e-2
    # A later fine-tune without the option keeps the conditioning it was given.
    again = make_tiny_workdir(tmp_path / "again")
    train(again, TrainConfig(size="tiny", batch=8, max_steps=1, progress=False, init_from=str(work)))
    assert load_backbone(again)[0].config.finding_condition


def test_conditioning_without_matching_labels_is_a_clear_error(tmp_path):
    work = make_tiny_workdir(tmp_path)
    with pytest.raises(ValueError, match="finding conditioning needs corpus labels"):
        train(work, TrainConfig(size="tiny", max_steps=1, progress=False, finding_condition=0.5))
