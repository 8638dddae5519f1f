"""Finding classifier and Frechet distance used for report->image realism."""

from __future__ import annotations

import numpy as np

from lab.eval.finding_classifier import auroc, train_classifier
from lab.training.realism import frechet_distance


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
    clf = train_classifier(imgs[:40], labels[:40], min_positives=5, dim=8)
    assert clf.findings == ("Lung Opacity",)
    assert auroc(clf, clf.embed(imgs[40:]), labels[40:])["Lung Opacity"] > 0.9


def test_synthesis_for_val_reports_can_be_steered_by_the_head(cxr_root, tmp_path):
    """One image per val report, batched, with or without head guidance (off by default); a negative strength is
    refused. (Steering itself is pinned down in tests/engines/sampling/test_head_guidance.py: the tiny VQ
    decodes every code alike, so images cannot show it here.)"""
    import pytest

    from engines.models.tiny import make_tiny_checkpoint
    from engines.pipeline import MedimPipeline
    from lab.data.cxr import load_cxr
    from lab.training.realism import synthesise_for_reports

    folder = make_tiny_checkpoint(tmp_path, findings=("No Finding", "Lung Opacity"))
    val = list(load_cxr(cxr_root, ("val",), limit=3))
    plain = synthesise_for_reports(folder, cxr_root, val, 2, None, batch=2, head_guidance=0.0)
    steered = synthesise_for_reports(folder, cxr_root, val, 2, None, batch=2, head_guidance=8.0)
    size = MedimPipeline.from_pretrained(folder, device="cpu").image_size
    assert len(plain) == len(steered) == 3 and all(im.shape == (size, size) for im in plain)
    assert synthesise_for_reports(folder, cxr_root, val, 2, None, batch=2)[0].tolist() == plain[0].tolist()
    with pytest.raises(ValueError, match=">= 0"):
        synthesise_for_reports(folder, cxr_root, val, 2, None, batch=2, head_guidance=-1.0)
