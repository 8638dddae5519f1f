"""Training: the loss falls, the task mix noises the right segments, resume works, DDP (gloo) runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from engines.models.config import preset
from lab.training.masking import TASK_ANSWER, TASK_BOTH, TASK_IMAGE, TASK_TEXT, noise_batch
from lab.training.schedule import get_schedule
from lab.training.tiny import make_tiny_workdir
from lab.training.trainer import TrainConfig, train


def _metrics(work):
    return [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]


def test_few_steps_make_the_loss_fall(tmp_path):
    work = make_tiny_workdir(tmp_path)
    train(work, TrainConfig(size="tiny", batch=16, max_steps=40, lr=3e-3, warmup=5, progress=False))
    m = _metrics(work)
    assert m[-1]["step"] == 40
    assert m[-1]["text_ce"] < 0.8 * m[0]["text_ce"] and m[-1]["image_ce"] < m[0]["image_ce"]
    assert (work / "model.safetensors").exists() and (work / "trainer_state.pt").exists()
    # Resume: continues from step 40 instead of starting over.
    train(work, TrainConfig(size="tiny", batch=16, max_steps=45, lr=3e-3, warmup=5, progress=False))
    assert json.loads((work / "config.json").read_text())["training"]["steps"] == 45


def test_resume_with_another_config_is_refused(tmp_path):
    work = make_tiny_workdir(tmp_path)
    train(work, TrainConfig(size="tiny", max_steps=1, progress=False))
    cfg = preset("tiny", text_vocab_size=120, image_vocab_size=16).to_dict()
    other = json.dumps(cfg | {"d_model": 64})
    with pytest.raises(ValueError, match="another config"):
        train(work, TrainConfig(size=other, max_steps=2, progress=False))


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        train(tmp_path, TrainConfig(size="tiny", max_steps=1, progress=False))


def test_task_mix_noises_only_the_right_segments():
    cfg = preset("tiny", text_vocab_size=50, image_vocab_size=16, text_mask_id=1, text_pad_id=0)
    g = torch.Generator().manual_seed(0)
    b = 4
    text = torch.randint(5, 50, (b, cfg.text_len), generator=g)
    image = torch.randint(0, 16, (b, cfg.image_len), generator=g)
    tasks = torch.tensor([TASK_TEXT, TASK_IMAGE, TASK_BOTH, TASK_ANSWER])
    prefix = torch.tensor([0, 0, 0, 5])
    nb = noise_batch(text, image, prefix, tasks, cfg, get_schedule("loglinear"), g, cond_drop=0.0,
                     t=torch.ones(b))
    assert (nb.text_in[0] == 1).all() and torch.equal(nb.image_in[0], image[0])  # text-only
    assert torch.equal(nb.text_in[1], text[1]) and (nb.image_in[1] == 16).all()  # image-only
    assert (nb.text_in[2] == 1).all() and (nb.image_in[2] == 16).all()  # both
    assert torch.equal(nb.text_in[3, :5], text[3, :5]) and (nb.text_in[3, 5:] == 1).all()  # answer only
    assert torch.equal(nb.image_in[3], image[3])
    assert torch.equal(nb.text_target, nb.text_in == 1)
    drop = noise_batch(text, image, prefix, tasks, cfg, get_schedule("loglinear"), g, cond_drop=1.0,
                       t=torch.full((b,), 0.3))
    assert (drop.image_in[0] == 16).all() and not drop.image_target[0].any()  # condition hidden, not a target
    assert (drop.text_in[1] == 1).all() and not drop.text_target[1].any()


def test_schedules():
    t = torch.tensor([0.25, 0.5, 1.0])
    for name in ("loglinear", "cosine"):
        s = get_schedule(name)
        p = s.mask_prob(t)
        assert (p[1:] >= p[:-1]).all() and p[-1] > 0.99 and (s.loss_weight(t) > 0).all()
    with pytest.raises(ValueError, match="unknown mask schedule"):
        get_schedule("nope")


def test_ddp_two_cpu_processes_with_gloo(tmp_path):
    work = make_tiny_workdir(tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "lab.cli", "model", "--work", str(work), "--size", "tiny", "--max-steps", "3", "--device", "cpu",
           "--no-progress", "--threads", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = json.loads((work / "config.json").read_text())
    assert cfg["training"]["world_size"] == 2 and cfg["training"]["steps"] == 3
    # Both ranks logged nothing twice: only rank 0 writes metrics.
    assert len(_metrics(work)) == 1


def test_cli_trains_and_ships_a_loadable_model_folder(tmp_path):
    from engines.pipeline import MedimPipeline
    from lab.cli import main

    work = make_tiny_workdir(tmp_path / "work")
    assert main(["model", "--work", str(work), "--size", "tiny", "--max-steps", "2", "--no-progress"]) == 0
    out = tmp_path / "shipped"
    assert main(["ship", "--work", str(work), "--out", str(out), "--steps", "3", "--temperature", "0.5"]) == 0
    pipe = MedimPipeline.from_pretrained(out)
    assert pipe.default_steps == 3 and pipe.default_temperature == 0.5
    assert not (out / "trainer_state.pt").exists() and not (out / "corpus.pt").exists()
    assert main(["model", "--work", str(tmp_path / "nowhere"), "--size", "tiny", "--max-steps", "1"]) == 2


def test_answer_weight_scales_only_the_answer_words_of_question_rows():
    from lab.training.loss import diffusion_loss

    cfg = preset("tiny", text_vocab_size=50, image_vocab_size=16, text_mask_id=1, text_pad_id=0)
    g = torch.Generator().manual_seed(1)
    text = torch.randint(5, 50, (2, cfg.text_len), generator=g)
    text[1, 8:] = 0  # row 1 is a question row: question 0..5, answer 6..7, then [PAD]s
    image = torch.randint(0, 16, (2, cfg.image_len), generator=g)
    tasks = torch.tensor([TASK_TEXT, TASK_ANSWER])
    nb = noise_batch(text, image, torch.tensor([0, 6]), tasks, cfg, get_schedule("loglinear"), g, cond_drop=0.0,
                     t=torch.ones(2))
    logits_t = torch.randn(2, cfg.text_len, 50, generator=g)
    logits_i = torch.randn(2, cfg.image_len, 16, generator=g)
    kw = {"pad_id": 0, "answer_rows": tasks == TASK_ANSWER}
    base = diffusion_loss(logits_t, logits_i, text, image, nb, get_schedule("loglinear"), **kw)
    heavy = diffusion_loss(logits_t, logits_i, text, image, nb, get_schedule("loglinear"), answer_weight=5.0, **kw)
    ce = torch.nn.functional.cross_entropy(logits_t[1, 6:8], text[1, 6:8], reduction="sum")
    # Only the two answer words gain weight (x4 more), divided by the text numel as every text term.
    assert torch.isclose(heavy["loss"] - base["loss"], 4.0 * ce / text.numel(), rtol=1e-4)
    assert torch.isclose(base["answer_ce"], ce / 2, rtol=1e-4)
    assert torch.equal(base["text_ce"], heavy["text_ce"])


def test_fine_tuning_starts_from_a_model_folder_and_refuses_another_config(tmp_path):
    from engines.models.checkpoint import load_backbone

    src = make_tiny_workdir(tmp_path / "src")
    train(src, TrainConfig(size="tiny", batch=8, max_steps=3, progress=False))
    start, _ = load_backbone(src)
    work = make_tiny_workdir(tmp_path / "ft")
    train(work, TrainConfig(size="tiny", batch=8, max_steps=1, lr=1e-9, warmup=1, progress=False, init_from=str(src),
                            answer_weight=4.0, preserve_init=True))
    tuned, _ = load_backbone(work)
    # One step at a vanishing learning rate: the weights are the source's, not a fresh initialisation.
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(start.state_dict().values(),
                                                                tuned.state_dict().values(), strict=True))
    assert json.loads((work / "config.json").read_text())["training"]["steps"] == 1
    other = make_tiny_workdir(tmp_path / "other")
    cfg = preset("tiny", text_vocab_size=120, image_vocab_size=16).to_dict()
    with pytest.raises(ValueError, match="another config"):
        train(other, TrainConfig(size=json.dumps(cfg | {"d_model": 64}), max_steps=1, progress=False,
                                 init_from=str(src)))


def test_distillation_rows_learn_the_teacher_not_the_data():
    from lab.training.loss import diffusion_loss

    cfg = preset("tiny", text_vocab_size=50, image_vocab_size=16, text_mask_id=1, text_pad_id=0)
    g = torch.Generator().manual_seed(2)
    text = torch.randint(5, 50, (2, cfg.text_len), generator=g)
    image = torch.randint(0, 16, (2, cfg.image_len), generator=g)
    tasks = torch.tensor([TASK_BOTH, TASK_ANSWER])
    nb = noise_batch(text, image, torch.tensor([0, 6]), tasks, cfg, get_schedule("loglinear"), g, cond_drop=0.0,
                     t=torch.ones(2))
    teacher = (torch.randn(2, cfg.text_len, 50, generator=g), torch.randn(2, cfg.image_len, 16, generator=g))
    student_t = teacher[0].clone().requires_grad_(True)
    student_i = teacher[1].clone().requires_grad_(True)
    out = diffusion_loss(student_t, student_i, text, image, nb, get_schedule("loglinear"), pad_id=0,
                         teacher=teacher, soft_rows=tasks != TASK_ANSWER)
    out["loss"].backward()
    # A student equal to its teacher is at the optimum of the distilled row: no gradient there ...
    assert student_t.grad[0].abs().max() < 1e-6 and student_i.grad[0].abs().max() < 1e-6
    # ... while the question row still learns its answer from the data.
    assert student_t.grad[1].abs().max() > 1e-4
    with pytest.raises(ValueError, match="soft_rows"):
        diffusion_loss(student_t, student_i, text, image, nb, get_schedule("loglinear"), teacher=teacher)


def test_preserving_the_init_needs_an_init(tmp_path):
    work = make_tiny_workdir(tmp_path)
    with pytest.raises(ValueError, match="needs init_from"):
        train(work, TrainConfig(size="tiny", max_steps=1, progress=False, preserve_init=True))
