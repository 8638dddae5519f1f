"""lab.training.reader_train / reader_fit / lungbox_train on small synthetic images: each learns what is
visible, and the objectives against the source shortcut run."""

from __future__ import annotations

import numpy as np
import pytest

from engines.reader.config import ReaderConfig
from lab.eval.auroc import auroc
from lab.training.lungbox_train import box_iou, train_lungbox
from lab.training.reader_fit import fit_platt
from lab.training.reader_train import (
    ReaderTrainConfig,
    group_folds,
    predict,
    sampling_weights,
    train_reader,
)


def _blobs(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise images; the finding is a bright disc somewhere in the middle."""
    rng = np.random.default_rng(seed)
    x = rng.integers(40, 120, (n, size, size)).astype(np.uint8)
    y = rng.random(n) < 0.5
    yy, xx = np.mgrid[0:size, 0:size]
    for i in np.flatnonzero(y):
        cy, cx = rng.integers(10, size - 10, 2)
        x[i][(yy - cy) ** 2 + (xx - cx) ** 2 < 16] = 250
    return x, y


@pytest.mark.parametrize("objective", ["bce", "grl", "dro"])
def test_reader_learns_a_visible_finding(objective):
    x, y = _blobs(240)
    cfg = ReaderConfig(findings=("Lung Lesion", "Edema"), size=32, widths=(8, 16), crop="none")
    labels = np.stack([y, np.zeros_like(y)], 1).astype(np.float32)
    known = np.stack([np.ones_like(y), np.zeros_like(y)], 1)  # no source speaks to Edema: masked out
    sources = np.where(np.arange(240) % 3 == 0, "a", "b")
    net = train_reader(x[:160], labels[:160], known[:160], sources[:160], cfg,
                       ReaderTrainConfig(epochs=6, batch=16, objective=objective, jpeg_p=0.0), log=lambda s: None)
    logits, feats = predict(net, x[160:])
    assert feats.shape == (80, 16)
    assert auroc(y[160:], logits[:, 0]) > 0.85


def test_training_checks_its_inputs():
    cfg = ReaderConfig(findings=("Edema",), size=32, widths=(8,), crop="none")
    with pytest.raises(ValueError, match=r"\(N, 32, 32\)"):
        train_reader(np.zeros((4, 16, 16), np.uint8), np.zeros((4, 1)), np.ones((4, 1), bool), ["a"] * 4, cfg,
                     ReaderTrainConfig(epochs=1, batch=2))
    with pytest.raises(ValueError, match="unknown objective"):
        ReaderTrainConfig(objective="magic")


def test_balanced_sampling_evens_out_sources_and_folds_keep_patients_together():
    w = sampling_weights(["a"] * 90 + ["b"] * 10, "balanced")
    assert w[:90].sum() / w[90:].sum() == pytest.approx(3.0)  # sqrt(90) : sqrt(10)
    groups = [f"p{i // 3}" for i in range(60)]
    folds = group_folds(groups, 3)
    for g in set(groups):
        assert len({folds[i] for i in range(60) if groups[i] == g}) == 1
    assert set(folds.tolist()) == {0, 1, 2}


def test_platt_fit_calibrates_shifted_logits():
    rng = np.random.default_rng(0)
    y = rng.random(4000) < 0.2
    logits = np.where(y, 1.0, -1.0) + rng.normal(0, 1.0, 4000) + 3.0  # everything pushed up by 3
    a, b = fit_platt(logits, y)
    p = 1 / (1 + np.exp(-(a * logits + b)))
    assert abs(p.mean() - y.mean()) < 0.01 and a > 0
    assert fit_platt(logits, np.zeros(4000, bool)) == (1.0, 0.0)


def test_lung_box_regressor_finds_a_bright_rectangle():
    rng = np.random.default_rng(0)
    imgs, boxes = [], []
    for _ in range(48):
        im = rng.integers(0, 40, (64, 64)).astype(np.uint8)
        x0, y0 = rng.integers(6, 20, 2)
        x1, y1 = x0 + rng.integers(28, 40), y0 + rng.integers(28, 40)
        im[y0:y1, x0:x1] = 200
        imgs.append(im)
        boxes.append([x0, y0, x1, y1])
    imgs, boxes = np.stack(imgs), np.array(boxes, np.float32)
    from engines.reader.lungbox import predict_lung_boxes

    net = train_lungbox(imgs[:40], boxes[:40], epochs=40, batch=8, log=lambda s: None)
    iou = box_iou(predict_lung_boxes(net, list(imgs[40:])), boxes[40:])
    assert iou.mean() > 0.6


def test_linear_readout_folds_its_pipeline_into_one_weight_vector():
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    from lab.training.reader_linear import fit_linear

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 20)) * rng.uniform(0.5, 3, 20) + rng.normal(size=20)
    y = np.stack([x[:, 0] + x[:, 1] > 0, np.zeros(300, bool)], 1).astype(np.float32)
    known = np.ones_like(y, bool)
    ro = fit_linear(x, y, known, c=1.0, pca=10)
    z = (x - x.mean(0)) / x.std(0)
    pca = PCA(10, random_state=0).fit(z)
    ref = LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced").fit(pca.transform(z), y[:, 0].astype(bool))
    assert np.allclose(ro.logits(x)[:, 0], ref.decision_function(pca.transform(z)), atol=1e-4)
    assert np.allclose(ro.weight[1], 0) and ro.bias[1] < -5  # no positives: the prior, not a fit
    contrib = ro.contributions(x[:1], 0)
    assert np.isclose(contrib.sum() + ro.logits(x.mean(0, keepdims=True))[0, 0], ro.logits(x[:1])[0, 0], atol=1e-3)
