"""MedimPipeline on a random tiny checkpoint: every job fills every mask, is deterministic, can be
cancelled, keeps what it must keep, and rejects bad input clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.errors import JobCancelled
from engines.models.tiny import make_tiny_checkpoint
from engines.pipeline import MedimPipeline, prepare_image
from engines.sampling.unmask import SamplingOptions, unmask


@pytest.fixture(scope="module")
def pipe(tmp_path_factory) -> MedimPipeline:
    return MedimPipeline.from_pretrained(make_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), text_len=40),
                                         device="cpu")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((120, 90)) * 3000).astype(np.uint16)


def test_unmask_fills_every_mask_and_records_uncertainty(pipe):
    cfg = pipe.model_config
    text = torch.full((2, cfg.text_len), cfg.text_mask_id)
    image = torch.full((2, cfg.image_len), cfg.image_mask_id)
    image[:, :3] = 5
    res = unmask(pipe.model, text, image, opts=SamplingOptions(steps=3), generator=torch.Generator().manual_seed(0))
    assert not (res.text == cfg.text_mask_id).any() and not (res.image == cfg.image_mask_id).any()
    assert (res.image[:, :3] == 5).all() and (res.image_step[:, :3] == -1).all()
    gen = res.text_step >= 0
    assert gen.all() and (res.text_confidence[gen] > 0).all() and (res.text_entropy[gen] >= 0).all()
    assert set(res.text_step.flatten().tolist()) <= {0, 1, 2}


def test_draft_report_is_deterministic_and_tokens_point_into_text(pipe, image):
    calls = []
    a = pipe.draft_report([image, image.T], steps=4, seed=3, progress=lambda k, n: calls.append((k, n)))
    b = pipe.draft_report([image, image.T], steps=4, seed=3)
    assert a.text == b.text and [t.token_id for t in a.tokens] == [t.token_id for t in b.tokens]
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert a.steps == 4 and a.seed == 3 and a.elapsed_s > 0
    for t in a.tokens:
        assert a.text[t.char_start:t.char_end] == t.text
        assert 0 <= t.confidence <= 1 and t.entropy >= 0 and 0 <= t.step < 4
    assert a.text.startswith(a.findings_text)


def test_jobs_shapes_and_inpaint_keeps_tokens_outside_the_mask(pipe, image):
    g = pipe.grid
    s = pipe.synthesise("The heart is normal. IMPRESSION: No acute abnormality.", steps=3, guidance=1.5)
    assert s.image.dtype == np.uint8 and s.image.shape == (pipe.image_size, pipe.image_size)
    assert s.token_grid.shape == (g, g) and s.token_confidence.shape == (g, g) and s.token_entropy.shape == (g, g)
    img, txt = pipe.joint("right lower lobe opacity", steps=3)
    assert img.token_grid.shape == (g, g) and isinstance(txt.text, str)
    ans = pipe.answer(image, "Is there a pleural effusion?", steps=3)
    assert isinstance(ans.text, str)
    mask = np.zeros((g, g), bool)
    mask[1:3, 1:3] = True
    out = pipe.inpaint(image, mask, "Small left pleural effusion.", steps=3, seed=1)
    before = pipe.encode_image(image)
    assert np.array_equal(out.token_grid[~mask], before[~mask])
    assert (out.token_confidence[~mask] == 1.0).all() and (out.token_entropy[~mask] == 0.0).all()
    assert np.array_equal(pipe.decode_tokens(before).shape, (pipe.image_size, pipe.image_size))


def test_cancel_raises(pipe, image):
    with pytest.raises(JobCancelled):
        pipe.draft_report([image], steps=4, cancel=lambda: True)


def test_explain_hooks(pipe, image):
    att = pipe.forward_with_attentions(image, "The lungs are clear.")
    n = len(att.text_tokens)
    assert att.text_to_image.shape == (2, 2, n, pipe.grid ** 2) and att.image_to_text.shape == (2, 2, pipe.grid ** 2, n)
    emb = pipe.image_embeddings(image)
    ll = pipe.report_log_likelihood(None, "The lungs are clear.", image_embeds=emb)
    ll.sum().backward()
    assert ll.shape == (1,) and float(ll) < 0 and emb.grad is not None and emb.grad.abs().sum() > 0
    assert pipe.image_token_log_likelihood(image, "Cardiomegaly.").shape == (pipe.grid, pipe.grid)


def test_bad_inputs_are_clear_errors(pipe, image, tmp_path):
    with pytest.raises(ValueError, match="2D"):
        pipe.draft_report([np.zeros((4, 4, 4, 4))])
    with pytest.raises(ValueError, match="empty"):
        pipe.draft_report([np.zeros((0, 5))])
    with pytest.raises(ValueError, match="at least one image"):
        pipe.draft_report([])
    with pytest.raises(ValueError, match="report text is empty"):
        pipe.synthesise("   ")
    with pytest.raises(ValueError, match="question is empty"):
        pipe.answer(image, "")
    with pytest.raises(ValueError, match="token_mask"):
        pipe.inpaint(image, np.zeros((3, 3), bool), "x")
    with pytest.raises(ValueError, match="token grid"):
        pipe.decode_tokens(np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="steps"):
        pipe.draft_report([image], steps=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MedimPipeline.from_pretrained(tmp_path / "missing")
    with pytest.raises(ValueError, match="runtime"):
        MedimPipeline.from_pretrained(pipe.path, runtime="tensorrt")


def test_prepare_image_normalises_pads_and_resizes():
    x = np.zeros((10, 20), np.float32)
    x[:, :10] = 4.0
    out = prepare_image(x, 32)
    assert out.shape == (32, 32) and out.dtype == np.uint8
    assert out[0].max() == 0 and out[16, 2] == 255  # padded rows are black; bright half stays bright
    assert prepare_image(np.full((5, 5), 7.0), 8).max() == 0  # constant image: no division by zero
    half = np.full((8, 8), 0.5, np.float32)  # display-normalised floats keep their contrast (not stretched)
    assert (prepare_image(half, 8) == 128).all()


def test_pipeline_metadata(pipe):
    assert len(pipe.weights_hash) == 64 and pipe.config["model"]["name"] == "tiny" and str(pipe.device) == "cpu"


def test_randomised_image_order_fills_every_mask_deterministically(pipe):
    """MaskGIT's commit-order noise: still every mask filled, the same under one seed, and a different
    commit order from pure confidence (early steps are not all the model's most confident codes)."""
    cfg = pipe.model_config
    text = torch.full((1, cfg.text_len), cfg.text_mask_id)
    image = torch.full((1, cfg.image_len), cfg.image_mask_id)

    def run(tau: float, seed: int = 0):
        return unmask(pipe.model, text, image, opts=SamplingOptions(steps=4, image_order_temperature=tau),
                      generator=torch.Generator().manual_seed(seed))

    a, b, plain = run(4.5), run(4.5), run(0.0)
    assert not (a.image == cfg.image_mask_id).any() and set(a.image_step.flatten().tolist()) <= {0, 1, 2, 3}
    assert torch.equal(a.image, b.image) and torch.equal(a.image_step, b.image_step)
    assert not torch.equal(a.image_step, plain.image_step)
