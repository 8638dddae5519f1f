"""Consensus drafting: the kept draft is the one whose findings agree most with the other samples."""

from __future__ import annotations

import numpy as np
import pytest

from engines.models.tiny import make_tiny_checkpoint
from engines.pipeline import MedimPipeline
from engines.sampling.consensus import consensus_index

NORMAL = "The lungs are clear. No pleural effusion or pneumothorax."
EFFUSION = "Small left pleural effusion."
NODULE = "Right upper lobe nodule. Small left pleural effusion."


def test_the_draft_closest_to_the_others_is_kept() -> None:
    assert consensus_index([EFFUSION, NORMAL, NODULE, NORMAL, NORMAL])[0] == 1  # the majority wins
    idx, agreement = consensus_index([NODULE, EFFUSION, EFFUSION])
    assert idx == 1 and 0.9 < agreement <= 1.0  # ties go to the first equally close draft
    assert consensus_index([NORMAL, NORMAL], confidences=[0.2, 0.9]) == (1, 1.0)  # then to confidence
    assert consensus_index([EFFUSION]) == (0, 1.0)
    with pytest.raises(ValueError):
        consensus_index([])


def test_pipeline_consensus_draft_is_one_of_its_samples(tmp_path) -> None:
    pipe = MedimPipeline.from_pretrained(make_tiny_checkpoint(tmp_path, text_len=24), "cpu")
    img = (np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8)
    steps: list[tuple[int, int]] = []
    kept = pipe.draft_report([img], steps=3, seed=5, consensus=3, progress=lambda d, n: steps.append((d, n)))
    assert kept.consensus is not None and kept.consensus[0] == 3 and steps[-1] == (3, 3)  # one batched run
    again = pipe.draft_report([img], steps=3, seed=5, consensus=3)
    assert again.text == kept.text  # deterministic under the seed
    single = pipe.draft_report([img], steps=3, seed=5, consensus=1)
    assert single.consensus is None
    two_views = pipe.draft_report([img, img[::-1]], steps=3, seed=5, consensus=2)
    assert two_views.consensus[0] == 2
    with pytest.raises(ValueError, match="consensus"):
        pipe.draft_report([img], consensus=0)


def test_verified_selection_keeps_the_draft_the_head_finds_likely() -> None:
    from engines.sampling.consensus import select_draft, verified_index

    drafts = [EFFUSION, NORMAL, NORMAL]
    says_effusion = {"No Finding": 0.1, "Pleural Effusion": 0.9}
    assert verified_index(drafts, says_effusion)[0] == 0  # the head overrules the majority
    idx, score = verified_index(drafts, {"No Finding": 0.95, "Pleural Effusion": 0.05})
    assert idx == 1 and score == pytest.approx(np.log(19))  # a tie between the normal drafts: the consensus one
    assert select_draft(drafts, mode="consensus")[0] == 1
    assert select_draft(drafts, mode="verified", finding_probs=says_effusion)[0] == 0
    with pytest.raises(ValueError, match="probabilities"):
        select_draft(drafts, mode="verified")
    # A rare finding at 0.3: below 0.5, but five times its training prevalence.
    rare = {"No Finding": 0.5, "Pleural Effusion": 0.3}
    prior = {"No Finding": 0.5, "Pleural Effusion": 0.06}
    assert select_draft(drafts, mode="verified", finding_probs=rare)[0] == 1
    assert select_draft(drafts, mode="verified-prior", finding_probs=rare, finding_prior=prior)[0] == 0
    with pytest.raises(ValueError, match="prevalence"):
        select_draft(drafts, mode="verified-prior", finding_probs=rare)
    with pytest.raises(ValueError, match="unknown draft selection"):
        select_draft(drafts, mode="longest")


def test_pipeline_verified_drafting_needs_a_head(tmp_path) -> None:
    img = (np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8)
    headed = MedimPipeline.from_pretrained(make_tiny_checkpoint(tmp_path / "h", text_len=24,
                                                                findings=("No Finding", "Edema")), "cpu")
    kept = headed.draft_report([img], steps=3, seed=5, consensus=3, select="verified")
    assert kept.consensus[0] == 3 and kept.text
    assert headed.draft_report([img], steps=3, seed=5, consensus=3, select="verified").text == kept.text
    plain = MedimPipeline.from_pretrained(make_tiny_checkpoint(tmp_path / "p", text_len=24), "cpu")
    with pytest.raises(ValueError, match="probabilities"):
        plain.draft_report([img], steps=3, consensus=2, select="verified")
