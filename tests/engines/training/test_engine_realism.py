"""Finding classifier and Frechet distance used for report->image realism."""

from __future__ import annotations

import numpy as np

from engines.training.finding_classifier import auroc, frechet_distance, train_classifier


def test_frechet_distance_is_zero_for_same_set_and_grows_with_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    assert abs(frechet_distance(a, a)) < 1e-6
    assert frechet_distance(a, a + 1.0) > frechet_distance(a, a + 0.1) > 0


def test_classifier_separates_bright_from_dark_spot_images():
    rng = np.random.default_rng(0)
    imgs, labels = [], []
    for k in range(60):
        im = (rng.random((64, 64)) * 80).astype(np.uint8)
        pos = k % 2 == 1
        if pos:
            im[10:30, 10:30] = 230
        imgs.append(im)
        labels.append({"Lung Opacity": int(pos)})
    clf = train_classifier(imgs[:40], labels[:40], min_pos=5, dim=8)
    assert clf.findings == ["Lung Opacity"]
    assert auroc(clf, clf.embed(imgs[40:]), labels[40:])["Lung Opacity"] > 0.9
