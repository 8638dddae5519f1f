"""A small finding classifier for judging edits, kept apart from the engine on purpose: the engine's finding
head ranks and steers what-if variants (ranking.py, engines.sampling.head_guidance), so it cannot also judge them.

Per CheXpert finding, an L2 logistic regression on fixed image features: HOG of the 64-px image
(edges and texture: effusion menisci, enlarged heart borders, nodules) and the 32-px intensities
(where the lungs are bright or dark). Trained on the train split's source labels, judged by val AUROC.
Saved as a plain .npz (no pickle), so loading runs no code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.feature import hog

FEATURE_VERSION = 1
MIN_POSITIVES = 20


def image_features(image: np.ndarray) -> np.ndarray:
    """float32 feature vector of one greyscale image (any size; resized as the data were, no crop)."""
    a = np.asarray(image)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"image must be 2D, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = np.zeros(a.shape, np.uint8) if hi <= lo else ((a - lo) / (hi - lo) * 255).astype(np.uint8)
    im = Image.fromarray(a)
    small = np.asarray(im.resize((64, 64), Image.BILINEAR), np.float32) / 255.0
    tiny = np.asarray(im.resize((32, 32), Image.BILINEAR), np.float32).reshape(-1) / 255.0
    h = hog(small, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), feature_vector=True)
    return np.concatenate([h.astype(np.float32), tiny]).astype(np.float32)


@dataclass
class FindingClassifier:
    findings: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (n_findings, n_features)
    intercept: np.ndarray  # (n_findings,)
    val_auroc: dict[str, float]

    def predict_features(self, feats: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(feats) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(z @ self.coef.T + self.intercept)))

    def predict(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n_images, n_findings) probabilities."""
        return self.predict_features(np.stack([image_features(im) for im in images]))

    def probability(self, image: np.ndarray, finding: str) -> float:
        if finding not in self.findings:
            raise KeyError(f"the classifier has no {finding!r}; it knows {', '.join(self.findings)}")
        return float(self.predict([image])[0, self.findings.index(finding)])

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"findings": list(self.findings), "val_auroc": self.val_auroc,
                           "feature_version": FEATURE_VERSION})
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, mean=self.mean, scale=self.scale, coef=self.coef, intercept=self.intercept,
                 meta=np.array(meta))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FindingClassifier:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"finding classifier {path} does not exist")
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("feature_version") != FEATURE_VERSION:
                raise ValueError(f"{path} was trained on other features (version {meta.get('feature_version')})")
            return cls(tuple(meta["findings"]), z["mean"], z["scale"], z["coef"], z["intercept"],
                       {k: float(v) for k, v in meta["val_auroc"].items()})


def _matrix(samples) -> tuple[np.ndarray, list[dict[str, int]]]:
    feats = np.stack([image_features((s.load_image() * 255).round().astype(np.uint8)) for s in samples])
    return feats, [s.findings for s in samples]


def train_classifier(train_samples, val_samples, findings: Sequence[str] | None = None, *, c: float = 0.05,
                     min_positives: int = MIN_POSITIVES) -> FindingClassifier:
    """Fit one logistic regression per finding with at least `min_positives` train positives (uncertain
    labels left out of that finding's fit) and report its val AUROC."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    x_tr, y_tr = _matrix(train_samples)
    x_va, y_va = _matrix(val_samples)
    mean, scale = x_tr.mean(0), x_tr.std(0) + 1e-6
    z_tr, z_va = (x_tr - mean) / scale, (x_va - mean) / scale
    if findings is None:
        from engines.labeler import PATHOLOGIES

        findings = [f for f in PATHOLOGIES if sum(1 for y in y_tr if y.get(f) == 1) >= min_positives]
    coefs, inters, aurocs, kept = [], [], {}, []
    for f in findings:
        yt = np.array([y.get(f, 0) for y in y_tr])
        keep = yt != -1
        if (yt[keep] == 1).sum() < 2 or (yt[keep] == 0).sum() < 2:
            continue
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
        clf.fit(z_tr[keep], yt[keep])
        coefs.append(clf.coef_[0])
        inters.append(clf.intercept_[0])
        kept.append(f)
        yv = np.array([y.get(f, 0) for y in y_va])
        kv = yv != -1
        if 0 < (yv[kv] == 1).sum() < kv.sum():
            aurocs[f] = float(roc_auc_score(yv[kv], clf.decision_function(z_va[kv])))
        else:
            aurocs[f] = float("nan")
    if not kept:
        raise ValueError("no finding has enough positive training images")
    return FindingClassifier(tuple(kept), mean.astype(np.float32), scale.astype(np.float32),
                             np.stack(coefs).astype(np.float32), np.array(inters, np.float32), aurocs)
