"""Uncertainty from draft disagreement, token and image entropy; the study API and its cache."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engines.sampling.results import TokenInfo
from explain.cache import ExplanationCache, explanation_key
from explain.study import StudyExplanation, explain_study
from explain.uncertainty import finding_uncertainty, span_token_uncertainty
from tests.support.explain_samples import REPORT


def test_vote_agreement_and_entropy():
    report = {"Pleural Effusion": 1, "Cardiomegaly": 0}
    drafts = [{"Pleural Effusion": 1}, {"Pleural Effusion": 1}, {"Pleural Effusion": -1}, {"Cardiomegaly": 1}]
    u = finding_uncertainty(report, drafts)
    assert u["Pleural Effusion"].votes == {"present": 2, "absent": 1, "uncertain": 1}
    assert u["Pleural Effusion"].agreement == 0.5 and u["Pleural Effusion"].uncertainty == 0.5
    assert u["Pleural Effusion"].vote_entropy == pytest.approx(
        -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)) / math.log(3))
    assert u["Cardiomegaly"].state == "absent" and u["Cardiomegaly"].agreement == 0.75
    assert u["Edema"].agreement == 1.0 and u["Edema"].vote_entropy == 0.0
    with pytest.raises(ValueError, match="at least one"):
        finding_uncertainty(report, [])


def test_token_uncertainty_of_a_span():
    toks = [TokenInfo("small", 5, 0.9, 0.2, 0, 0, 5), TokenInfo("effusion", 6, 0.4, 1.5, 1, 6, 14)]
    u = span_token_uncertainty(toks, 0, 14)
    assert u.n_tokens == 2 and u.min_confidence == 0.4 and u.mean_entropy == pytest.approx(0.85)
    assert span_token_uncertainty(toks, 20, 30) is None


@pytest.fixture(scope="module")
def study(tiny_pipeline):
    img = np.random.default_rng(1).random((48, 40)).astype(np.float32)
    draft = tiny_pipeline.draft_report([img], seed=0, steps=4)
    seen = []
    exp = explain_study(tiny_pipeline, [img], draft.text or REPORT, draft=draft, k_drafts=3, ig_steps=4,
                        attention_steps=2, steps=4, progress=lambda d, n: seen.append((d, n)))
    return exp, draft, seen


def test_study_gives_every_uncertainty(study):
    exp, draft, seen = study
    assert len(exp.drafts) == 3 and len(set(exp.drafts)) >= 1
    assert set(exp.findings) >= {"No Finding", "Pleural Effusion"}
    assert all(0.0 <= u.agreement <= 1.0 for u in exp.findings.values())
    assert len(exp.sentence_disagreement) == len(exp.sentences) == len(exp.sentence_tokens)
    if draft.text.strip():
        assert any(t is not None for t in exp.sentence_tokens)
    m = exp.image_uncertainty_map()
    assert m.shape == (48, 40) and np.isfinite(m).all()
    assert seen[-1] == (100, 100) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_cache_round_trips_through_disk_and_evicts(study, tmp_path):
    exp, _, _ = study
    key = explanation_key("1.2.3", exp.report.report_text, "abc", {"k": 3})
    assert key != explanation_key("1.2.3", exp.report.report_text + " ", "abc", {"k": 3})
    assert key != explanation_key("1.2.3", exp.report.report_text, "abd", {"k": 3})
    cache = ExplanationCache(tmp_path, capacity=1)
    cache.put(key, exp)
    assert cache.get(key) is exp
    fresh = ExplanationCache(tmp_path).get(key)  # from the .npz
    assert isinstance(fresh, StudyExplanation) and fresh is not exp
    assert fresh.drafts == exp.drafts and fresh.findings == exp.findings
    for a, b in zip(fresh.sentences, exp.sentences, strict=True):
        assert (a.text, a.start, a.end, a.findings) == (b.text, b.start, b.end, b.findings)
        if b.attribution_map is not None:
            np.testing.assert_array_equal(a.attribution_map, b.attribution_map)
    np.testing.assert_array_equal(fresh.image_uncertainty, exp.image_uncertainty)
    cache.put("other", exp)
    assert key not in cache._mem and key in cache  # evicted from memory, still on disk
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    assert cache.get("broken") is None and not (tmp_path / "broken.npz").exists()
    with pytest.raises(ValueError):
        explanation_key("", "x", "e")


def test_draft_tokens_follow_the_text_into_the_editor():
    from engines.sampling.results import TextResult
    from explain.uncertainty import draft_tokens

    toks = [TokenInfo("effusion", 7, 0.4, 1.5, 1, 6, 14), TokenInfo("clear", 8, 0.9, 0.1, 0, 16, 21)]
    res = TextResult("small effusion\n\nclear", "small effusion", "clear", toks)
    report = "FINDINGS: small effusion IMPRESSION: clear"
    got = draft_tokens(res, report)
    assert [report[t.char_start:t.char_end] for t in got] == ["effusion", "clear"]
    edited = "FINDINGS: large effusion IMPRESSION: clear"
    assert [edited[t.char_start:t.char_end] for t in draft_tokens(res, edited)] == ["clear"]
    as_dict = {"findings": "small effusion", "impression": "clear",
               "token_uncertainty": [{"text": "effusion", "confidence": 0.4, "entropy": 1.5, "section": "findings",
                                      "start": 6, "end": 14, "step": 1}]}
    got = draft_tokens(as_dict, report)
    assert [report[t.char_start:t.char_end] for t in got] == ["effusion"] and got[0].confidence == 0.4
    assert draft_tokens(None, report) == []


def test_the_head_reading_travels_with_the_explanation(tmp_path):
    import json

    from engines.models.tiny import make_tiny_checkpoint
    from engines.pipeline import MedimPipeline

    pipe = MedimPipeline.from_pretrained(make_tiny_checkpoint(tmp_path, text_len=48,
                                                              findings=("No Finding", "Pleural Effusion")), "cpu")
    pipe.finding_prior = {"No Finding": 0.3, "Pleural Effusion": 0.1}
    imgs = [np.random.default_rng(k).random((48, 40)).astype(np.float32) for k in (1, 2)]
    exp = explain_study(pipe, imgs, REPORT, k_drafts=0, methods=("attention",), image_uncertainty=False,
                        attention_steps=2)
    per_view = pipe.finding_probabilities(imgs)
    assert exp.head_probabilities["Pleural Effusion"] == pytest.approx(
        (per_view[0]["Pleural Effusion"] + per_view[1]["Pleural Effusion"]) / 2, abs=1e-4)
    assert exp.head_prior == pipe.finding_prior
    back = StudyExplanation.from_arrays(exp.to_arrays())
    assert back.head_probabilities == exp.head_probabilities and back.head_prior == exp.head_prior
    arrays = exp.to_arrays()  # a cache written before the head's reading was kept still loads
    meta = json.loads(str(arrays["meta"]))
    del meta["head_probabilities"], meta["head_prior"]
    arrays["meta"] = np.array(json.dumps(meta))
    assert StudyExplanation.from_arrays(arrays).head_probabilities == {}


def test_image_uncertainty_does_not_paint_the_unmasking_order(tiny_pipeline):
    """Each token's entropy is read at random masks (every token hidden at least once), not at the step the sampler
    happened to commit it; a token's entropy under a mask does not depend on what else is in the batch."""
    from explain.uncertainty import committed_entropy_grid, image_uncertainty_grid

    pipe = tiny_pipeline
    g = pipe.grid
    grid = image_uncertainty_grid(pipe, REPORT, seed=0, steps=4)
    assert grid.shape == (g, g) and np.isfinite(grid).all() and (grid >= 0).all()
    assert grid.max() <= math.log(pipe.model_config.image_vocab_size + 1) + 1e-4
    tokens = np.asarray(pipe.synthesise(REPORT, steps=4, seed=0).token_grid)
    rng = np.random.default_rng(0)
    masks = np.stack([np.ones((g, g), bool), rng.random((g, g)) < 0.5])
    both = pipe.image_token_entropy(REPORT, tokens, masks)
    assert np.isnan(both[1][~masks[1]]).all() and np.isfinite(both[1][masks[1]]).all()
    alone = pipe.image_token_entropy(REPORT, tokens, masks[1:])
    np.testing.assert_allclose(alone[0][masks[1]], both[1][masks[1]], rtol=1e-4, atol=1e-5)
    # the old map still exists to measure against, and differs from the new one
    old = committed_entropy_grid(pipe, REPORT, seed=0, steps=4)
    assert old.shape == (g, g) and not np.allclose(old, grid)


def test_a_change_in_how_maps_are_made_is_a_new_cache_key():
    import explain.cache as cache

    key = explanation_key("s", "r", "e", {"k": 1})
    was = cache.MAPS_VERSION
    try:
        cache.MAPS_VERSION = was + 1
        assert explanation_key("s", "r", "e", {"k": 1}) != key
    finally:
        cache.MAPS_VERSION = was


def test_the_explanation_shows_the_reading_as_the_ai_panel_does(tmp_path):
    """The findings list of the explain panel gives the calibrated probability and the prevalence on its scale, as
    the AI panel and the answers do (one reading everywhere), not the raw one."""
    from engines.calibration import Calibration, FindingCalibration
    from engines.models.tiny import make_tiny_checkpoint
    from engines.pipeline import MedimPipeline

    folder = make_tiny_checkpoint(tmp_path, text_len=48, findings=("No Finding", "Pleural Effusion"))
    squash = FindingCalibration("platt", {"a": 0.0, "b": -3.0})  # everything -> 4.7 %
    Calibration({"Pleural Effusion": squash}, info={"source": "head"},
                prevalence={"Pleural Effusion": 0.04}).save(folder)
    pipe = MedimPipeline.from_pretrained(folder, "cpu")
    pipe.finding_prior = {"No Finding": 0.3, "Pleural Effusion": 0.1}
    img = np.random.default_rng(1).random((48, 40)).astype(np.float32)
    exp = explain_study(pipe, [img], REPORT, k_drafts=0, methods=("attention",), image_uncertainty=False,
                        attention_steps=2)
    assert exp.head_probabilities["Pleural Effusion"] == pytest.approx(0.0474, abs=1e-3)
    assert exp.head_prior == {"No Finding": 0.3, "Pleural Effusion": 0.04}
