"""Text BPE and VQ image tokenizer: special tokens, spans, shapes, persistence, training signal."""

from __future__ import annotations

import pytest
import torch

from engines.models.tiny import TINY_VQ, tiny_tokenizer
from engines.tokenizers.text import SPECIAL_TOKENS, TextTokenizer
from engines.tokenizers.vq import VQVAE, VQConfig


def test_text_tokenizer_has_special_tokens_and_spans_match_text(tmp_path):
    tok = tiny_tokenizer()
    assert all(tok.tk.token_to_id(t) is not None for t in SPECIAL_TOKENS)
    ids = tok.encode("The lungs are clear. No pleural effusion.")
    text, spans = tok.decode_spans([tok.ids["[FINDINGS]"], *ids, tok.pad_id])
    assert text == "the lungs are clear. no pleural effusion."
    for sp in spans:
        assert text[sp.char_start:sp.char_end] == sp.text
    tok.save(tmp_path)
    assert TextTokenizer.load(tmp_path).encode("pleural effusion") == tok.encode("pleural effusion")


def test_text_tokenizer_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="text tokenizer"):
        TextTokenizer.load(tmp_path)


def test_vq_round_trip_shapes_and_bad_sizes(tmp_path):
    vq = VQVAE(TINY_VQ).eval()
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    codes = vq.encode(x)
    assert codes.shape == (2, TINY_VQ.grid, TINY_VQ.grid) and int(codes.max()) < TINY_VQ.codebook_size
    assert vq.decode(codes).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="shape"):
        vq.encode(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match="codes must lie"):
        vq.decode(torch.full((1, 4, 4), 99))
    vq.save(tmp_path)
    again = VQVAE.load(tmp_path)
    for (k, a), (_, b) in zip(vq.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_vq_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown VQ config"):
        VQConfig.from_dict({"image_size": 32, "colour": True})


def test_vq_few_steps_reduce_reconstruction_error():
    torch.manual_seed(0)
    vq = VQVAE(TINY_VQ)
    x = torch.linspace(-1, 1, 32)[None, None, :, None].expand(8, 1, 32, 32).contiguous()
    opt = torch.optim.Adam(vq.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        o = vq(x)
        loss = (o.recon - x).abs().mean() + o.commit_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
