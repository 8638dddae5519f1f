"""Jittered token views: what the jitter keeps (shape, black padding, no flip) and how training draws views."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lab.training.augment import Jitter, jitter_image
from lab.training.corpus import Corpus


def _radiograph() -> np.ndarray:
    img = np.zeros((64, 64), np.uint8)
    img[:, 8:56] = 90  # padded left/right as the curated images are
    img[20:40, 12:26] = 220  # a bright blob on the image's left (the patient's right)
    return img


def test_jitter_keeps_shape_and_padding_and_never_flips():
    img = _radiograph()
    out = jitter_image(img, np.random.default_rng(0))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.array_equal(out, img)
    assert out[:, :4].max() == 0 and out[:, -4:].max() == 0  # the black bars stay black
    ys, xs = np.nonzero(out > 180)
    assert xs.mean() < 32  # the blob stays on its side
    again = jitter_image(img, np.random.default_rng(0))
    assert np.array_equal(out, again)


def test_zero_jitter_is_the_identity():
    img = _radiograph()
    none = Jitter(rotate_deg=0, shift=0, scale=0, contrast=0, brightness=0, gamma=0)
    assert np.array_equal(jitter_image(img, np.random.default_rng(3), none), img)


def test_jitter_rejects_what_is_not_a_grey_uint8_image():
    with pytest.raises(ValueError, match="2D uint8"):
        jitter_image(np.zeros((8, 8, 3), np.uint8), np.random.default_rng(0))


def _corpus(views: torch.Tensor | None) -> Corpus:
    images = torch.arange(3)[:, None].repeat(1, 4)  # image k is all k
    return Corpus(text=torch.zeros(3, 5, dtype=torch.long), prefix_len=torch.zeros(3, dtype=torch.long),
                  is_qa=torch.zeros(3, dtype=torch.bool), image_index=torch.arange(3), images=images,
                  image_ids=["a", "b", "c"], views=views)


def test_training_draws_the_original_or_one_of_its_own_views():
    views = torch.stack([_corpus(None).images + 10, _corpus(None).images + 20])
    c = _corpus(views)
    idx = torch.tensor([0, 1, 2] * 200)
    rows = c.image_rows(idx, torch.Generator().manual_seed(0))
    base = rows[:, 0] % 10
    assert torch.equal(base, idx)  # always a view of the requested image
    assert set((rows[:, 0] // 10).tolist()) == {0, 1, 2}  # original and both views are drawn
    assert torch.equal(_corpus(None).image_rows(idx), _corpus(None).images[idx])


def test_views_of_another_shape_are_refused():
    c = _corpus(torch.zeros(2, 3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="views"):
        c.check(text_len=5, image_len=4, text_vocab=10, image_vocab=30)


def test_corpus_files_without_views_still_load(tmp_path):
    c = _corpus(None)
    data = {k: getattr(c, k) for k in c.__dataclass_fields__ if k != "views"}
    torch.save(data, tmp_path / "corpus.pt")
    assert Corpus.load(tmp_path / "corpus.pt").views is None


def test_prepare_adds_jittered_views_of_the_real_images(cxr_root, tmp_path):
    import shutil

    from engines.default_weights import DEFAULT_WEIGHTS
    from lab.training.prepare import prepare

    shipped = DEFAULT_WEIGHTS
    work = tmp_path / "work"
    work.mkdir()
    for name in ("text_tokenizer.json", "vq.safetensors", "vq_config.json"):
        shutil.copy2(shipped / name, work / name)
    summary = prepare(cxr_root, shipped, work, variants=1, limit=4, keep_tokenizers=True, augment=2)
    c = Corpus.load(work / "corpus.pt")
    assert summary["augment_views"] == 2 and c.views is not None
    assert tuple(c.views.shape) == (2, *c.images.shape)
    # Jittered copies tokenise differently, but mostly into the same codes' neighbourhood: not noise.
    changed = (c.views != c.images[None]).float().mean().item()
    assert 0.05 < changed < 1.0
