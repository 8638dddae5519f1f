"""lab.eval.reader_variants: the test-time views keep laterality and frame the image as the reader does, and the
paired difference says which variant reads better, with an interval that clears zero only for a real gain."""

from __future__ import annotations

import numpy as np
import torch

from engines.reader import FindingReader, ReaderConfig
from engines.reader.network import LungBoxNet, ReaderNet
from lab.eval.reader_variants import VIEW_SETS, VIEWS, macro_auroc, paired_difference, view_crop


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    im = rng.integers(30, 220, (200, 180)).astype(np.uint8)
    im[:, :40] = 250  # a bright band on the image's left only: a flip would move it
    return im


def test_identity_view_is_the_readers_own_crop():
    torch.manual_seed(0)
    cfg = ReaderConfig(findings=("A",), size=32, widths=(8, 16))
    reader = FindingReader(cfg, [ReaderNet(cfg)], LungBoxNet())
    im = _image()
    crops, boxes = reader.prepare([im])
    assert np.array_equal(view_crop(im, boxes[0], (1.0, 0.0, 0.0, 1.0), 32), crops[0])


def test_views_never_flip_and_keep_the_outside_black():
    im = _image()
    box = (20.0, 20.0, 160.0, 180.0)
    for name, view in VIEWS.items():
        crop = view_crop(im, box, view, 64).astype(float)
        assert crop[:, :6].mean() > crop[:, -20:].mean() + 40, name  # the bright band stays on the left
    dark = np.zeros((100, 100), np.uint8)
    dark[20:80, 20:80] = 128
    out = view_crop(dark, (0.0, 0.0, 100.0, 100.0), VIEWS["gamma 0.85"], 50)
    assert (out[:5] == 0).all() and out[25, 25] > 128  # gamma < 1 brightens the inside only
    assert all(set(v) <= set(VIEWS) for v in VIEW_SETS.values())


def test_paired_difference_clears_zero_only_for_a_real_gain():
    rng = np.random.default_rng(0)
    n = 600
    truth = rng.random((n, 2)) < 0.3
    groups = np.array([str(i // 2) for i in range(n)])
    weak = truth + rng.normal(0, 1.5, (n, 2))
    strong = truth + rng.normal(0, 0.5, (n, 2))
    every = np.ones(n, bool)
    d, (lo, hi) = paired_difference(truth, weak, strong, groups, every, resamples=200)
    assert d == macro_auroc(truth, strong, np.arange(n)) - macro_auroc(truth, weak, np.arange(n))
    assert 0 < lo < d < hi
    noisy = weak + rng.normal(0, 0.01, (n, 2))  # the same reading with a little jitter: no real difference
    _, (lo, hi) = paired_difference(truth, weak, noisy, groups, every, resamples=200)
    assert lo < 0 < hi
