"""Variant ranking by the finding head: signs from the edit, scores relative to the reconstruction."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from engines.counterfactual.edits import diff_reports
from engines.counterfactual.ranking import edit_signs, head_edit_scores, rank_variants
from engines.models.tiny import make_tiny_checkpoint
from engines.pipeline import MedimPipeline

BEFORE = "Small left pleural effusion. The heart is normal in size."
AFTER = "No pleural effusion. Cardiomegaly."


@pytest.fixture(scope="module")
def headed(tmp_path_factory):
    d = make_tiny_checkpoint(tmp_path_factory.mktemp("head"), text_len=24,
                             findings=("Cardiomegaly", "Pleural Effusion"))
    return MedimPipeline.from_pretrained(d, "cpu")


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [(rng.random((32, 32)) * 255).astype(np.uint8) for _ in range(n)]


def test_signs_follow_the_edit():
    edit = diff_reports(BEFORE, AFTER)
    assert edit_signs(edit, ("Cardiomegaly", "Pleural Effusion", "Edema")) == {"Pleural Effusion": -1.0,
                                                                                 "Cardiomegaly": 1.0}
    assert edit_signs(edit, ("Edema",)) == {}


def test_variants_are_ordered_by_the_head(headed):
    edit = diff_reports(BEFORE, AFTER)
    ref, *imgs = _images(5)
    scores = head_edit_scores(headed, imgs, ref, edit)
    probs = headed.finding_probabilities([ref, *imgs])
    expect = [((p["Cardiomegaly"] - probs[0]["Cardiomegaly"]) - (p["Pleural Effusion"] - probs[0]["Pleural Effusion"]))
              / 2 for p in probs[1:]]
    assert scores == pytest.approx(expect, abs=1e-6)
    variants = [SimpleNamespace(seed=k, decoded=im, head_score=None) for k, im in enumerate(imgs)]
    ranked = rank_variants(headed, variants, ref, edit)
    assert [v.seed for v in ranked] == list(np.argsort(-np.array(scores), kind="stable"))
    assert all(v.head_score is not None for v in ranked)


def test_no_head_keeps_the_seed_order(tmp_path):
    plain = MedimPipeline.from_pretrained(make_tiny_checkpoint(tmp_path, text_len=24), "cpu")
    ref, *imgs = _images(3)
    variants = [SimpleNamespace(seed=k, decoded=im, head_score=None) for k, im in enumerate(imgs)]
    assert rank_variants(plain, variants, ref, diff_reports(BEFORE, AFTER)) == variants
    assert all(v.head_score is None for v in variants)
