"""Out-of-fold reader features: the folds' scores are combined and calibrated as reader_fit does, and every
train image must be read by exactly one held-out fold."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lab.eval.reader_oof import merge


def _inputs(n: int = 200, k: int = 2):
    rng = np.random.default_rng(0)
    y = (rng.random((n, k)) < 0.3).astype(np.float32)
    reader = SimpleNamespace(config=SimpleNamespace(combine={"cnn": 1.0, "linear": 2.0}), findings=("A", "B"))
    return {"reader": reader, "ids": np.array([f"i{i}" for i in range(n)]), "y": y,
            "known": np.ones((n, k), bool)}, rng


def _parts(inp, rng, folds: int = 5):
    n = len(inp["ids"])
    fold = np.arange(n) % folds
    signal = inp["y"] * 2.0 - 1.0
    return [{"idx": np.flatnonzero(fold == f), "cnn": signal[fold == f] + rng.normal(0, 2.0, (int((fold == f).sum()), 2)),
             "lin": 5 * signal[fold == f] + rng.normal(0, 10.0, (int((fold == f).sum()), 2)),
             "emb": rng.normal(size=(int((fold == f).sum()), 8)).astype(np.float32)} for f in range(folds)]


def test_merge_calibrates_the_combined_out_of_fold_scores():
    inp, rng = _inputs()
    out = merge(inp, _parts(inp, rng))
    assert out["probs"].shape == (200, 2) and ((out["probs"] >= 0) & (out["probs"] <= 1)).all()
    assert np.allclose(np.linalg.norm(out["emb"], axis=1), 1.0, atol=1e-5)
    y = inp["y"] > 0
    for j in range(2):  # informative and calibrated: positives score higher, mean probability ~ prevalence
        assert out["probs"][y[:, j], j].mean() > out["probs"][~y[:, j], j].mean() + 0.2
        assert abs(out["probs"][:, j].mean() - y[:, j].mean()) < 0.05
    assert list(out["names"]) == ["A", "B"] and list(out["ids"]) == list(inp["ids"])


def test_parts_that_miss_or_repeat_images_are_refused():
    inp, rng = _inputs()
    parts = _parts(inp, rng)
    with pytest.raises(ValueError, match="exactly once"):
        merge(inp, parts[:4])
    with pytest.raises(ValueError, match="exactly once"):
        merge(inp, [*parts, parts[0]])
