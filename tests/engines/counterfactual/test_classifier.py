from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from engines.counterfactual.classifier import FindingClassifier, image_features, train_classifier


@dataclass
class _Sample:  # the two things train_classifier reads of engines.data.Sample
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
        out.append(_Sample(img, {"Pleural Effusion": int(pos)}))
    return out


def test_classifier_learns_a_visible_finding_and_round_trips(tmp_path: Path) -> None:
    clf = train_classifier(_samples(40, 0), _samples(20, 1), ["Pleural Effusion"], c=1.0)
    assert clf.val_auroc["Pleural Effusion"] > 0.9
    test = _samples(4, 2)
    p = clf.predict([(s.image * 255).astype(np.uint8) for s in test])[:, 0]
    assert p[1] > p[0] and p[3] > p[2]
    loaded = FindingClassifier.load(clf.save(tmp_path / "clf.npz"))
    assert np.allclose(loaded.predict([test[1].image]), clf.predict([test[1].image]))
    with pytest.raises(KeyError, match="no 'Edema'"):
        loaded.probability(test[0].image, "Edema")
    with pytest.raises(FileNotFoundError):
        FindingClassifier.load(tmp_path / "missing.npz")


def test_features_reject_bad_images() -> None:
    with pytest.raises(ValueError, match="2D"):
        image_features(np.zeros((4, 4, 3)))
    assert image_features(np.zeros((20, 30), np.float32)).ndim == 1
