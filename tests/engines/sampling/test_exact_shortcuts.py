"""Work cut from drafting must not change a draft: each shortcut is compared bit for bit with the code it
replaced (kept here as the reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.sampling.unmask import _propose
from engines.sentences.scorer import _gather


def _propose_reference(logp: torch.Tensor, temperature: float, g: torch.Generator, shared: bool):
    """_propose as it was: every position worked out, masked or not."""
    probs = logp.exp()
    entropy = -torch.where(probs > 0, probs * logp, torch.zeros_like(probs)).sum(-1)
    if temperature <= 0:
        tok = logp.argmax(-1)
    else:
        shape = (1, *logp.shape[1:]) if shared else logp.shape
        u = torch.rand(shape, generator=g).clamp_(1e-10, 1 - 1e-10).to(logp.device)
        gumbel = -torch.log(-torch.log(u))
        tok = (logp / temperature + gumbel).argmax(-1)
    conf = probs.gather(-1, tok[..., None])[..., 0]
    return tok, conf, entropy


@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.0])
@pytest.mark.parametrize("shared", [False, True])
def test_propose_on_masked_positions_only_is_bit_identical_there(temperature, shared) -> None:
    torch.set_num_threads(1)
    rng = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 128, 2000, generator=rng) * 3
    logits[..., :7] = -float("inf")  # banned tokens, as drafting sets them
    logp = torch.log_softmax(logits, -1)
    where = torch.rand(4, 128, generator=rng) < 0.4
    where[2] = False  # a row with nothing left to fill
    g_new, g_old = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    tok, conf, ent = _propose(logp, temperature, g_new, shared, where)
    ref_tok, ref_conf, ref_ent = _propose_reference(logp, temperature, g_old, shared)
    assert torch.equal(tok[where], ref_tok[where])
    assert torch.equal(conf[where], ref_conf[where])
    assert torch.equal(ent[where], ref_ent[where])
    assert torch.equal(g_new.get_state(), g_old.get_state())  # the generator advanced exactly as before
    assert not conf[~where].any() and not tok[~where].any()


def _gather_reference(logp: torch.Tensor, start: int, candidates, text_len: int) -> np.ndarray:
    """_gather as it was: the id matrix filled one tensor row at a time."""
    n = len(candidates)
    width = max(len(c) for c in candidates)
    ids = torch.zeros((n, max(width, 1)), dtype=torch.long)
    lens = torch.zeros(n, dtype=torch.long)
    for i, c in enumerate(candidates):
        ids[i, : len(c)] = torch.as_tensor(list(c), dtype=torch.long)
        lens[i] = len(c)
    pos = start + torch.arange(ids.shape[1])
    valid = (torch.arange(ids.shape[1])[None] < lens[:, None])
    fits = (start + lens) <= text_len - 2
    lp = logp[pos.clamp_max(text_len - 1)[None].expand(n, -1), ids]
    total = torch.where(valid, lp, torch.zeros_like(lp)).sum(1) / lens.clamp_min(1)
    total = torch.where(fits & (lens > 0), total, torch.full_like(total, -float("inf")))
    return total.double().numpy()


@pytest.mark.parametrize("start", [0, 40, 120])
def test_candidate_scores_are_bit_identical(start) -> None:
    rng = np.random.default_rng(5)
    logp = torch.log_softmax(torch.from_numpy(rng.normal(size=(128, 2000)).astype(np.float32)), -1)
    candidates = [tuple(int(x) for x in rng.integers(0, 2000, rng.integers(0, 30))) for _ in range(300)]
    candidates.append(())
    got = _gather(logp, start, candidates, 128)
    want = _gather_reference(logp, start, candidates, 128)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    assert np.isneginf(got[-1])
