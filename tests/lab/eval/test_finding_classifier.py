from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from lab.eval.finding_classifier import (
    FEATURE_VERSION,
    FindingClassifier,
    auroc,
    image_features,
    to_uint8,
    train_classifier,
    train_on_splits,
)


@dataclass
class _Sample:  # the two things train_on_splits reads of engines.data.Sample
    image: np.ndarray
    findings: dict[str, int] = field(default_factory=dict)

    def load_image(self) -> np.ndarray:
        return self.image


def _samples(n: int, seed: int) -> list[_Sample]:
    """A bright blob at the lower left is 'Pleural Effusion'; everything else is noise."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        img = rng.random((48, 48)).astype(np.float32) * 0.5
        pos = k % 2 == 1
        if pos:
            img[30:46, 2:20] += 0.5
        out.append(_Sample(img, {"Pleural Effusion": int(pos), "Edema": -1 if k % 3 == 0 else 0}))
    return out


def test_classifier_learns_a_visible_finding_and_round_trips(tmp_path: Path) -> None:
    clf = train_on_splits(_samples(40, 0), _samples(20, 1), min_positives=5, dim=16)
    assert clf.findings == ("Pleural Effusion",)  # Edema has no positive (uncertain counts as negative)
    assert clf.val_auroc["Pleural Effusion"] > 0.9
    test = _samples(4, 2)
    p = clf.predict([to_uint8(s.image) for s in test])[:, 0]
    assert p[1] > p[0] and p[3] > p[2]
    loaded = FindingClassifier.load(clf.save(tmp_path / "clf.npz"))
    assert np.allclose(loaded.predict([test[1].image]), clf.predict([test[1].image]))
    assert loaded.val_auroc == clf.val_auroc
    with pytest.raises(KeyError, match="no 'Edema'"):
        loaded.probability(test[0].image, "Edema")
    with pytest.raises(FileNotFoundError):
        FindingClassifier.load(tmp_path / "missing.npz")


def test_the_saved_arrays_predict_exactly_what_sklearn_fitted() -> None:
    """The .npz keeps the fitted scaler, PCA and regressions as arrays (no pickle); their algebra must be
    sklearn's own prediction, or AUROCs and Frechet distances would silently change."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    samples = _samples(30, 3)
    images = [s.image for s in samples]
    labels = [s.findings for s in samples]
    clf = train_classifier(images, labels, min_positives=5, dim=6)
    x = np.stack([image_features(i) for i in images])
    scaler = StandardScaler().fit(x)
    pca = PCA(n_components=6, random_state=0).fit(scaler.transform(x))
    e = pca.transform(scaler.transform(x))
    lr = LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced").fit(e, [lab["Pleural Effusion"]
                                                                               for lab in labels])
    assert np.allclose(clf.embed(images), e, atol=1e-6)
    assert np.allclose(clf.predict(images)[:, 0], lr.predict_proba(e)[:, 1], atol=1e-6)
    assert auroc(clf, e, labels)["Pleural Effusion"] > 0.9


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2D"):
        image_features(np.zeros((4, 4, 3)))
    assert image_features(np.zeros((20, 30), np.float32)).ndim == 1
    assert to_uint8(np.array([[0.0, 1.0]])).tolist() == [[0, 255]]
    assert to_uint8(np.array([[-1.0, 3.0]])).tolist() == [[0, 255]]  # out of [0, 1]: stretched
    with pytest.raises(ValueError, match="as many labels"):
        train_classifier([np.zeros((8, 8))], [])
    with pytest.raises(ValueError, match="no finding has 20"):
        train_classifier([s.image for s in _samples(6, 0)], [s.findings for s in _samples(6, 0)])
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.array('{"feature_version": 1}'))
    with pytest.raises(ValueError, match=f"other features .*uses {FEATURE_VERSION}"):
        FindingClassifier.load(other)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a RadStation finding classifier"):
        FindingClassifier.load(junk)
