"""The closed-VQA evaluation runs a real backend over rule-derived questions and scores it beside the
training-majority answer on exactly the same questions."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engines.backends import create_backend
from engines.data.sample import Sample
from lab.eval.vqa_backends import evaluate, markdown

tiny = pytest.importorskip("engines.models.tiny", reason="the built-in engine is not in this checkout")


def _sample(tmp_path, i: int, split: str, findings: dict[str, int]) -> Sample:
    path = tmp_path / f"{split}{i}.png"
    Image.fromarray((np.random.default_rng(i).random((32, 32)) * 255).astype(np.uint8)).save(path)
    return Sample(f"{split}{i}", f"p{i}", f"s{i}", split, "test", "frontal", findings=findings, image_path=path)


def test_engine_and_majority_are_scored_on_the_same_closed_questions(tmp_path) -> None:
    train = [_sample(tmp_path, i, "train", {"Pleural Effusion": 0, "No Finding": 1}) for i in range(3)]
    train.append(_sample(tmp_path, 9, "train", {"Pleural Effusion": 1}))
    val = [_sample(tmp_path, 20, "val", {"Pleural Effusion": 1}), _sample(tmp_path, 21, "val", {"Pleural Effusion": 0})]
    backend = create_backend("diffusion", path=tiny.make_tiny_checkpoint(tmp_path / "m"), device="cpu")
    result = evaluate(backend, val, train, max_images=None, seed=0, steps=2, log=io.StringIO())
    # val20: "normal?" (no) + "effusion?" (yes); val21 (no No Finding label): "effusion?" (no)
    assert result["n_images"] == 2 and result["n_questions"] == 3
    assert result["majority"]["closed_accuracy"] == pytest.approx(1 / 3)  # train majority: normal yes, effusion no
    assert 0.0 <= result["engine"]["closed_accuracy"] <= 1.0 and result["engine"]["n_closed"] == 3
    assert set(result["by_qtype"]) == {"normal", "presence"}
    assert "| majority answer (train) | 0.333 | 3 |" in markdown(result, "t")
    cut = evaluate(backend, val, train, max_images=None, seed=0, steps=2, budget_s=0.0, log=io.StringIO())
    assert cut["n_images"] == 1 and cut["n_questions"] == 2


def test_the_ranking_of_p_yes_is_scored_per_question(tmp_path) -> None:
    from lab.eval.auroc import auroc

    train = [_sample(tmp_path, i, "train", {"Pleural Effusion": i % 2}) for i in range(4)]
    val = [_sample(tmp_path, 20 + i, "val", {"Pleural Effusion": i % 2}) for i in range(4)]
    backend = create_backend("diffusion", path=tiny.make_tiny_checkpoint(tmp_path / "m"), device="cpu")
    result = evaluate(backend, val, train, max_images=None, seed=0, steps=2, log=io.StringIO())
    row = result["yes_auroc"]["Is there a pleural effusion?"]
    assert row["n"] == 4 and row["positives"] == 2 and 0.0 <= row["auroc"] <= 1.0
    assert "AUROC of p(yes)" in markdown(result, "t")
    assert auroc([True, False, True, False], [0.9, 0.1, 0.5, 0.5]) == pytest.approx(0.875)
    assert auroc([False], [0.3]) is None


def test_accuracy_is_broken_down_by_source_with_intervals() -> None:
    from lab.eval.vqa_backends import accuracy_by_source

    refs = ["yes", "no", "no", "yes", "no", "no"]
    preds = ["yes", "no", "yes", "no", "no", "no"]
    base = ["no"] * 6
    sources = ["nih_talo", "nih_talo", "nih_zech", "covid_ieee8023", "covid_ieee8023", "covid_ieee8023"]
    out = accuracy_by_source(preds, base, refs, sources, [f"p{i}" for i in range(6)], resamples=100)
    assert out["NIH only"]["n"] == 3 and out["NIH only"]["engine"] == pytest.approx(2 / 3)
    assert out["covid_ieee8023"]["majority"] == pytest.approx(2 / 3)
    lo, hi = out["overall"]["engine_ci"]
    assert lo <= 4 / 6 <= hi
