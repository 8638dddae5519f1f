"""The project's image finding classifier: the one yardstick for "does this image show finding X".

No pretrained (Inception, CheXpert) weights can be fetched here, so the engine's image outputs are judged
by a classifier the project trains on the train split, reported with its val AUROC so its strength is
known. Two proofs use it: report -> image realism (its AUROC on generated images and the Frechet
distance in its feature space, lab.training.realism) and what-if edit success
(lab.eval.whatif). It is deliberately not the engine's own finding head, which ranks and
steers what-if variants and so cannot also judge them.

Features: 32x32 box-downsampled pixels + HOG of the 128-px image -> standardised -> PCA(128) (the space
the Frechet distance uses) -> one balanced L2 logistic regression per CheXpert finding with enough
positives. Trains on a 2-core CPU in about a minute. Saved as a plain .npz (no pickle), so loading a
classifier runs no code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from engines.data.images import to_uint8

FEATURE_VERSION = 2  # 1 was a 64-px HOG + 32-px intensities without PCA (the what-if judge until session 17)
MIN_POSITIVES = 20


def image_features(image: np.ndarray) -> np.ndarray:
    """float32 feature vector of one greyscale image of any size (resized as a whole, no crop)."""
    from skimage.feature import hog

    a = np.asarray(image)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"image must be a 2D greyscale array, got shape {a.shape}")
    im = Image.fromarray(to_uint8(a))
    small = np.asarray(im.resize((32, 32), Image.BOX), dtype=np.float32).ravel() / 255.0
    mid = np.asarray(im.resize((128, 128), Image.BILINEAR), dtype=np.float32) / 255.0
    h = hog(mid, orientations=8, pixels_per_cell=(16, 16), cells_per_block=(2, 2), feature_vector=True)
    return np.concatenate([small, h.astype(np.float32)])


@dataclass
class FindingClassifier:
    findings: tuple[str, ...]
    mean: np.ndarray  # (n_features,) standardisation
    scale: np.ndarray  # (n_features,)
    components: np.ndarray  # (dim, n_features) PCA axes of the standardised features
    pca_mean: np.ndarray  # (n_features,)
    coef: np.ndarray  # (n_findings, dim)
    intercept: np.ndarray  # (n_findings,)
    val_auroc: dict[str, float] = field(default_factory=dict)

    def embed_features(self, feats: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(feats) - self.mean) / self.scale
        return (z - self.pca_mean) @ self.components.T

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n_images, dim): the feature space of the Frechet distance."""
        return self.embed_features(np.stack([image_features(i) for i in images]))

    def logits(self, embedded: np.ndarray) -> np.ndarray:
        return np.atleast_2d(embedded) @ self.coef.T + self.intercept

    def predict_embedded(self, embedded: np.ndarray) -> np.ndarray:
        """(n, n_findings) probabilities of already embedded images."""
        return 1.0 / (1.0 + np.exp(-self.logits(embedded)))

    def predict(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n_images, n_findings) probabilities."""
        return self.predict_embedded(self.embed(images))

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
        np.savez(tmp, mean=self.mean, scale=self.scale, components=self.components, pca_mean=self.pca_mean,
                 coef=self.coef, intercept=self.intercept, meta=np.array(meta))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FindingClassifier:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"finding classifier {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(str(arrays.pop("meta")))
        except (OSError, ValueError, KeyError) as exc:  # JSONDecodeError is a ValueError
            raise ValueError(f"{path} is not a RadStation finding classifier: {exc}") from exc
        if meta.get("feature_version") != FEATURE_VERSION:
            raise ValueError(f"{path} was trained on other features (version {meta.get('feature_version')}, "
                             f"this RadStation uses {FEATURE_VERSION}); train it again")
        try:
            return cls(tuple(meta["findings"]), arrays["mean"], arrays["scale"], arrays["components"],
                       arrays["pca_mean"], arrays["coef"], arrays["intercept"],
                       {k: float(v) for k, v in meta["val_auroc"].items()})
        except KeyError as exc:
            raise ValueError(f"{path} is not a RadStation finding classifier: {exc} is missing") from exc


def _positive(labels: Sequence[Mapping[str, int]], finding: str) -> np.ndarray:
    """1 where the label is positive; uncertain (-1) and absent count as negative, as the data's convention."""
    return np.array([1 if lab.get(finding) == 1 else 0 for lab in labels])


def train_classifier(images: Sequence[np.ndarray], labels: Sequence[Mapping[str, int]], *,
                     min_positives: int = MIN_POSITIVES, dim: int = 128, c: float = 0.1,
                     seed: int = 0) -> FindingClassifier:
    """Fit the feature pipeline and one logistic regression per finding with at least `min_positives`
    positives and negatives (val AUROC is left empty; `auroc` fills it on a held-out split)."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(images) != len(labels) or not images:
        raise ValueError(f"need as many labels as images (got {len(images)} images, {len(labels)} labels)")
    x = np.stack([image_features(i) for i in images])
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    pca = PCA(n_components=min(dim, *z.shape), random_state=seed).fit(z)
    e = pca.transform(z)
    findings, coefs, inters = [], [], []
    for f in sorted({k for lab in labels for k in lab}):
        y = _positive(labels, f)
        if y.sum() < min_positives or (1 - y).sum() < min_positives:
            continue
        lr = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(e, y)
        findings.append(f)
        coefs.append(lr.coef_[0])
        inters.append(lr.intercept_[0])
    if not findings:
        raise ValueError(f"no finding has {min_positives} positive and negative training images")
    return FindingClassifier(tuple(findings), scaler.mean_.astype(np.float64), scaler.scale_.astype(np.float64),
                             pca.components_.astype(np.float64), pca.mean_.astype(np.float64),
                             np.stack(coefs), np.array(inters))


def auroc(clf: FindingClassifier, embedded: np.ndarray, labels: Sequence[Mapping[str, int]]) -> dict[str, float]:
    """Per finding AUROC of embedded images against labels (findings with both classes present)."""
    from sklearn.metrics import roc_auc_score

    probs = clf.predict_embedded(embedded)
    out = {}
    for j, f in enumerate(clf.findings):
        y = _positive(labels, f)
        if 0 < y.sum() < len(y):
            out[f] = float(roc_auc_score(y, probs[:, j]))
    return out


def train_on_splits(train_samples: Sequence, val_samples: Sequence, **kw) -> FindingClassifier:
    """Train on `train_samples` (engines.data.Sample or anything with load_image() and findings) and record
    the val AUROC on `val_samples`."""
    clf = train_classifier([s.load_image() for s in train_samples], [s.findings for s in train_samples], **kw)
    clf.val_auroc = auroc(clf, clf.embed([s.load_image() for s in val_samples]), [s.findings for s in val_samples])
    return clf
