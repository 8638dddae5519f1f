"""The auxiliary finding head: targets from labels, its loss, training it, and fine-tuning a head-less model."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from engines.models.backbone import MedimBackbone
from engines.models.checkpoint import load_backbone, save_backbone
from engines.models.config import MedimConfig, preset
from lab.training.finding_targets import choose_findings, finding_loss, finding_targets
from lab.training.tiny import make_tiny_workdir
from lab.training.trainer import TrainConfig, train


def _metrics(work):
    return [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]


def test_findings_with_enough_positives_become_targets():
    samples = [SimpleNamespace(findings={"Pneumonia": 1, "Lung Opacity": 1}) for _ in range(3)]
    samples += [SimpleNamespace(findings={"No Finding": 1, "Pneumonia": 0})]
    names = choose_findings(samples, min_positives=2)
    assert names == ("Lung Opacity", "Pneumonia")  # the labeler's order; No Finding has one positive
    assert finding_targets(samples, names).tolist() == [[1, 1]] * 3 + [[0, 0]]


def test_finding_loss_uses_only_rows_that_saw_the_image():
    logits = torch.tensor([[10.0], [-10.0]])
    targets = torch.tensor([[1.0], [1.0]])
    assert finding_loss(logits, targets, torch.tensor([True, False])) < 1e-3  # the wrong row is not seen
    assert finding_loss(logits, targets, torch.tensor([False, True])) > 5
    assert finding_loss(logits, targets, torch.tensor([False, False])) is None
    with pytest.raises(ValueError, match="do not match"):
        finding_loss(logits, torch.ones(2, 3), torch.tensor([True, True]))


def test_the_head_reads_the_image_and_round_trips(tmp_path):
    cfg = preset("tiny", text_vocab_size=50, image_vocab_size=16, text_mask_id=1, text_pad_id=0)
    plain = MedimBackbone(cfg)
    text, t = torch.full((2, cfg.text_len), 5), torch.ones(2)
    assert plain(text, torch.zeros(2, cfg.image_len, dtype=torch.long), t).finding_logits is None
    with_head = MedimBackbone(MedimConfig.from_dict(cfg.to_dict() | {"findings": ["Edema", "Pneumonia"],
                                                                      "finding_layer": 1}))
    a = with_head(text, torch.zeros(2, cfg.image_len, dtype=torch.long), t).finding_logits
    b = with_head(text, torch.full((2, cfg.image_len), 7), t).finding_logits
    assert a.shape == (2, 2) and not torch.allclose(a, b)  # depends on the image tokens
    save_backbone(tmp_path, with_head)
    back, _ = load_backbone(tmp_path)
    assert back.config.findings == ("Edema", "Pneumonia")
    assert torch.equal(back(text, torch.zeros(2, cfg.image_len, dtype=torch.long), t).finding_logits, a)
    with pytest.raises(ValueError, match="finding_layer"):
        MedimConfig.from_dict(cfg.to_dict() | {"findings": ["Edema"], "finding_layer": 3})


def test_training_with_the_finding_loss_teaches_the_head(tmp_path):
    work = make_tiny_workdir(tmp_path)
    train(work, TrainConfig(size="tiny", batch=16, max_steps=60, lr=3e-3, warmup=5, progress=False,
                            finding_weight=1.0))
    m = [r for r in _metrics(work) if "finding_bce" in r]
    assert m and m[-1]["finding_bce"] < 0.5 * m[0]["finding_bce"]
    # The training prevalence of each head finding travels with the weights (drafts' verified-prior selection).
    assert json.loads((work / "config.json").read_text())["finding_prior"] == {"Pleural Effusion": 0.5}
    model, _ = load_backbone(work)
    from lab.training.corpus import Corpus

    corpus = Corpus.load(work / "corpus.pt")
    text = torch.full((len(corpus.images), model.config.text_len), model.config.text_mask_id)
    with torch.no_grad():
        p = torch.sigmoid(model(text, corpus.images, torch.ones(len(text))).finding_logits[:, 0])
    y = corpus.labels[:, 0]
    assert p[y == 1].min() > p[y == 0].max()  # the two synthetic classes are separated


def test_fine_tuning_a_model_without_head_adds_one(tmp_path):
    src = make_tiny_workdir(tmp_path / "src")
    train(src, TrainConfig(size="tiny", batch=8, max_steps=2, progress=False))
    start, _ = load_backbone(src)
    assert start.config.findings == ()
    work = make_tiny_workdir(tmp_path / "ft")
    train(work, TrainConfig(size="tiny", batch=8, max_steps=1, lr=1e-9, warmup=1, progress=False,
                            init_from=str(src), finding_weight=1.0))
    tuned, _ = load_backbone(work)
    assert tuned.config.findings == ("Pleural Effusion",)
    kept = {k: v for k, v in tuned.state_dict().items() if not k.startswith("finding_head.")}
    assert all(torch.allclose(v, start.state_dict()[k], atol=1e-5) for k, v in kept.items())
    # Fine-tuning it again without the finding loss keeps the head it was given.
    again = make_tiny_workdir(tmp_path / "again")
    train(again, TrainConfig(size="tiny", batch=8, max_steps=1, progress=False, init_from=str(work)))
    assert load_backbone(again)[0].config.findings == ("Pleural Effusion",)


def test_a_corpus_without_labels_is_a_clear_error(tmp_path):
    from lab.training.corpus import Corpus

    work = make_tiny_workdir(tmp_path)
    c = Corpus.load(work / "corpus.pt")
    c.labels = c.label_names = None
    c.save(work / "corpus.pt")
    with pytest.raises(ValueError, match="no finding labels"):
        train(work, TrainConfig(size="tiny", max_steps=1, progress=False, finding_weight=1.0))
