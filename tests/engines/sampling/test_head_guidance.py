"""Finding-head guidance: the bias follows the head's first-order pull, touches only free tokens, and steers
inpainted tokens the asked way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.models.tiny import make_tiny_checkpoint
from engines.pipeline import MedimPipeline
from engines.sampling.head_guidance import head_guidance_bias, head_signs, head_token_potential

FINDINGS = ("No Finding", "Pleural Effusion")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory) -> MedimPipeline:
    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("hg"), text_len=24, findings=FINDINGS)
    return MedimPipeline.from_pretrained(folder, device="cpu")


def _head_logit(pipe: MedimPipeline, codes: np.ndarray, finding: str) -> float:
    p = pipe.finding_probabilities_of_codes([np.asarray(codes).reshape(-1).tolist()])[0][finding]
    return float(np.log(p / (1 - p)))


def test_bias_is_zero_where_committed_and_normalised_where_free(pipe):
    model, cfg = pipe.model, pipe.model_config
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, cfg.image_vocab_size, (2, cfg.image_len), generator=g)
    image[:, :10] = cfg.image_mask_id
    logp = torch.log_softmax(torch.randn(2, cfg.image_len, cfg.image_vocab_size, generator=g), -1)
    signs = head_signs(model, {"Pleural Effusion": 1.0})
    bias = head_guidance_bias(model, image, logp, signs, 2.0)
    assert bias.shape == logp.shape and torch.isfinite(bias).all()
    assert bias[:, 10:].abs().max() == 0
    for row in range(2):  # normalised per sequence
        assert bias[row, :10].std().item() == pytest.approx(2.0, rel=1e-3)
    assert torch.equal(head_guidance_bias(model, image, logp, signs, 0.0), torch.zeros_like(logp))
    assert torch.equal(head_guidance_bias(model, image, logp, signs * 0, 2.0), torch.zeros_like(logp))
    # Opposite pushes give opposite biases.
    assert torch.allclose(head_guidance_bias(model, image, logp, -signs, 2.0), -bias, atol=1e-5)


def test_a_batch_gets_per_row_what_each_row_alone_gets(pipe):
    model, cfg = pipe.model, pipe.model_config
    g = torch.Generator().manual_seed(3)
    image = torch.randint(0, cfg.image_vocab_size, (2, cfg.image_len), generator=g)
    image[0, :6] = cfg.image_mask_id
    image[1, 3:20] = cfg.image_mask_id
    logp = torch.log_softmax(torch.randn(2, cfg.image_len, cfg.image_vocab_size, generator=g), -1)
    signs = torch.stack([head_signs(model, {"Pleural Effusion": 1.0}), head_signs(model, {"No Finding": 1.0})])
    both = head_guidance_bias(model, image, logp, signs, 1.5)
    for row in range(2):
        alone = head_guidance_bias(model, image[row:row + 1], logp[row:row + 1], signs[row], 1.5)
        assert torch.allclose(both[row], alone[0], atol=1e-5)


def test_synthesis_is_steered_towards_what_the_report_states(pipe):
    report = "Small left pleural effusion."
    plain = [pipe.synthesise(report, steps=3, seed=s, head_guidance=0.0).token_grid for s in range(4)]
    steered = [pipe.synthesise(report, steps=3, seed=s, head_guidance=8.0).token_grid for s in range(4)]
    up = np.mean([_head_logit(pipe, t, "Pleural Effusion") for t in steered])
    assert up > np.mean([_head_logit(pipe, t, "Pleural Effusion") for t in plain])
    assert pipe.default_synthesis_head_guidance == 0.0
    assert np.array_equal(pipe.synthesise(report, steps=3, seed=0).token_grid, plain[0])  # off by default


def test_the_favoured_code_moves_the_head_the_asked_way(pipe):
    """First order holds: placing at one free position the code the bias favours most raises the head's logit
    more than placing the code it disfavours most."""
    model, cfg = pipe.model, pipe.model_config
    codes = pipe.encode_image(np.random.default_rng(1).integers(0, 255, (40, 40), dtype=np.uint8)).reshape(-1)
    image = torch.as_tensor(codes, dtype=torch.long)[None].clone()
    pos = 5
    image[0, pos] = cfg.image_mask_id
    logp = torch.full((1, cfg.image_len, cfg.image_vocab_size), -float(np.log(cfg.image_vocab_size)))
    bias = head_guidance_bias(model, image, logp, head_signs(model, {"Pleural Effusion": 1.0}), 1.0)[0, pos]
    best, worst = codes.copy(), codes.copy()
    best[pos], worst[pos] = int(bias.argmax()), int(bias.argmin())
    assert _head_logit(pipe, best, "Pleural Effusion") > _head_logit(pipe, worst, "Pleural Effusion")


def test_the_potential_says_where_a_change_moves_the_head_most(pipe):
    """First order holds for the region cue too: giving the highest-potential token its best code raises the
    head's logit more than doing the same at the lowest-potential token; the push's sign flips the ranking's
    meaning and the potential is never negative."""
    model, cfg = pipe.model, pipe.model_config
    codes = pipe.encode_image(np.random.default_rng(4).integers(0, 255, (40, 40), dtype=np.uint8)).reshape(-1)
    image = torch.as_tensor(codes, dtype=torch.long)[None]
    signs = head_signs(model, {"Pleural Effusion": 1.0})
    pot = head_token_potential(model, image, signs)[0]
    assert pot.shape == (cfg.image_len,) and bool((pot >= 0).all()) and float(pot.max()) > 0
    table = model.image_embed.weight[: cfg.image_vocab_size].detach()

    def best_code(pos: int) -> int:  # the code the first-order model picks at `pos`
        emb = model.embed_image(image).detach().requires_grad_(True)
        text = torch.full((1, cfg.text_len), cfg.text_mask_id, dtype=torch.long)
        logit = model.finding_logits(text, None, torch.ones(1), image_embeds=emb)[0, 1]
        (grad,) = torch.autograd.grad(logit, emb)
        return int((table @ grad[0, pos]).argmax())

    hi, lo = int(pot.argmax()), int(pot.argmin())
    moved = {}
    for pos in (hi, lo):
        c = codes.copy()
        c[pos] = best_code(pos)
        moved[pos] = _head_logit(pipe, c, "Pleural Effusion") - _head_logit(pipe, codes, "Pleural Effusion")
    assert moved[hi] > moved[lo]
    grid = pipe.head_potential(np.random.default_rng(4).integers(0, 255, (40, 40), dtype=np.uint8),
                               {"Pleural Effusion": 1.0})
    assert grid.shape == (pipe.grid, pipe.grid) and np.allclose(grid.reshape(-1), pot.numpy(), atol=1e-5)
    masked = image.clone()
    masked[0, 0] = cfg.image_mask_id
    with pytest.raises(ValueError, match="observed image"):
        head_token_potential(model, masked, signs)


def test_inpainting_with_head_guidance_steers_and_keeps_the_rest(pipe):
    img = np.random.default_rng(2).integers(0, 255, (40, 40), dtype=np.uint8)
    mask = np.zeros((pipe.grid, pipe.grid), bool)
    mask[1:3, 1:3] = True
    kept = pipe.encode_image(img)

    def logits(sign: float) -> list[float]:
        return [_head_logit(pipe, pipe.inpaint(img, mask, "Pleural effusion.", steps=3, seed=s, guidance=0,
                                               head_push={"Pleural Effusion": sign}, head_guidance=8.0).token_grid,
                            "Pleural Effusion") for s in range(4)]

    up, down = logits(1.0), logits(-1.0)
    assert np.mean(up) > np.mean(down)
    res = pipe.inpaint(img, mask, "Pleural effusion.", steps=3, head_push={"Pleural Effusion": 1.0},
                       head_guidance=8.0)
    assert np.array_equal(res.token_grid[~mask], kept[~mask])
    # Nothing pushed or no strength: the same resample as without guidance.
    plain = pipe.inpaint(img, mask, "Pleural effusion.", steps=3, seed=0)
    assert np.array_equal(pipe.inpaint(img, mask, "Pleural effusion.", steps=3, seed=0, head_push={},
                                       head_guidance=8.0).token_grid, plain.token_grid)


def test_bad_head_guidance_requests_are_clear_errors(pipe, tmp_path):
    img = np.zeros((40, 40), np.uint8)
    mask = np.ones((pipe.grid, pipe.grid), bool)
    with pytest.raises(ValueError, match="not the head's"):
        pipe.inpaint(img, mask, "x", steps=2, head_push={"Fracture": 1.0}, head_guidance=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        pipe.inpaint(img, mask, "x", steps=2, head_push={"Pleural Effusion": 1.0}, head_guidance=-1.0)
    bare = MedimPipeline.from_pretrained(make_tiny_checkpoint(tmp_path, text_len=24), device="cpu")
    with pytest.raises(ValueError, match="finding head"):
        bare.inpaint(img, np.ones((bare.grid, bare.grid), bool), "x", steps=2, head_push={"Pleural Effusion": 1.0},
                     head_guidance=1.0)
