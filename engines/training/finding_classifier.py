"""A small finding classifier on radiographs and the Frechet distance in its feature space.

No pretrained (Inception) weights can be fetched here, so realism of generated images is measured in
the feature space of the project's own classifier: 32x32 box-downsampled pixels + HOG of the 128-px
image -> standardised -> PCA(128) (these 128 features are the space the Frechet distance uses) ->
one logistic regression per CheXpert finding with enough positives. Cheap enough to train on a
shared 2-core CPU in about a minute; reported with its val AUROC so its strength is known.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import linalg


def to_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 as is; float images in [0, 1] (Sample.load_image) scaled by 255."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float64)
    if a.max() <= 1.0:
        a = a * 255.0
    return np.clip(a, 0, 255).round().astype(np.uint8)


def image_features(image: np.ndarray) -> np.ndarray:
    from skimage.feature import hog

    im = Image.fromarray(to_uint8(image))
    small = np.asarray(im.resize((32, 32), Image.BOX), dtype=np.float32).ravel() / 255.0
    mid = np.asarray(im.resize((128, 128), Image.BILINEAR), dtype=np.float32) / 255.0
    h = hog(mid, orientations=8, pixels_per_cell=(16, 16), cells_per_block=(2, 2), feature_vector=True)
    return np.concatenate([small, h.astype(np.float32)])


@dataclass
class FindingClassifier:
    findings: list[str]
    pipeline: object = None  # sklearn: scaler + PCA
    heads: dict = field(default_factory=dict)

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """The 128-d feature space (after PCA) of a list of uint8 images."""
        return self.pipeline.transform(np.stack([image_features(i) for i in images]))

    def predict_proba(self, feats: np.ndarray) -> dict[str, np.ndarray]:
        return {f: self.heads[f].predict_proba(feats)[:, 1] for f in self.findings}

    def save(self, path: Path) -> None:
        path.write_bytes(pickle.dumps(self))

    @classmethod
    def load(cls, path: Path) -> FindingClassifier:
        return pickle.loads(path.read_bytes())


def train_classifier(train_images: list[np.ndarray], train_labels: list[dict[str, int]], min_pos: int = 20,
                     dim: int = 128, seed: int = 0) -> FindingClassifier:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.stack([image_features(i) for i in train_images])
    pipe = make_pipeline(StandardScaler(), PCA(n_components=dim, random_state=seed)).fit(x)
    z = pipe.transform(x)
    names = sorted({k for lab in train_labels for k in lab})
    clf = FindingClassifier([], pipe)
    for f in names:
        y = np.array([1 if lab.get(f) == 1 else 0 for lab in train_labels])
        if y.sum() < min_pos or (1 - y).sum() < min_pos:
            continue
        clf.heads[f] = LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced").fit(z, y)
        clf.findings.append(f)
    return clf


def auroc(clf: FindingClassifier, feats: np.ndarray, labels: list[dict[str, int]]) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    probs = clf.predict_proba(feats)
    out = {}
    for f in clf.findings:
        y = np.array([1 if lab.get(f) == 1 else 0 for lab in labels])
        if 0 < y.sum() < len(y):
            out[f] = float(roc_auc_score(y, probs[f]))
    return out


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (rows = samples)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(s1 @ s2, disp=False)
    if not np.isfinite(covmean).all():
        eps = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def evaluate_realism(data: Path | None, model_dir: Path | None, out: Path, steps: int | None = None,
                     guidance: float | None = None, limit: int | None = None, batch: int = 16,
                     condition: bool | None = None, head_guidance: float | None = None) -> dict:
    """Train the classifier (train split), report val AUROC, FD(train real, val real) and, with a model,
    FD(generated from val reports, val real). Writes out/realism.json and the generated images' grid."""
    from engines.data.cxr import load_cxr
    from engines.data.paired import SentenceBank, pair_reports

    out.mkdir(parents=True, exist_ok=True)
    train = list(load_cxr(data, ("train",)))
    val = list(load_cxr(data, ("val",), limit=limit))
    tr_img = [np.asarray(s.load_image()) for s in train]
    va_img = [np.asarray(s.load_image()) for s in val]
    clf = train_classifier(tr_img, [s.findings for s in train])
    clf.save(out / "finding_classifier.pkl")
    f_tr, f_va = clf.embed(tr_img), clf.embed(va_img)
    res: dict = {"features": "PCA-128 of standardised 32x32 pixels + HOG(128 px); logistic regression heads",
                 "val_auroc": auroc(clf, f_va, [s.findings for s in val]), "n_train": len(train), "n_val": len(val),
                 "fd_train_real_vs_val_real": frechet_distance(f_tr, f_va)}
    res["val_auroc_macro"] = float(np.mean(list(res["val_auroc"].values()))) if res["val_auroc"] else None
    if model_dir is not None:
        gen = synthesise_for_reports(model_dir, data, val, steps, guidance, batch, condition, head_guidance)
        f_gen = clf.embed(gen)
        res["fd_generated_vs_val_real"] = frechet_distance(f_gen, f_va)
        res["generated_val_auroc"] = auroc(clf, f_gen, [s.findings for s in val])
        res["synthesis"] = {"steps": steps, "guidance": guidance, "model": str(model_dir), "condition": condition,
                            "head_guidance": head_guidance}
        paired = pair_reports(val, SentenceBank.from_iu(), seed=0)
        res["n_generated"] = len(gen)
        Image.fromarray(np.concatenate([np.concatenate(gen[i * 8:(i + 1) * 8], 1) for i in range(2)], 0)).save(
            out / "generated_val_examples.png")
        (out / "generated_val_reports.jsonl").write_text("".join(
            json.dumps({"id": s.image_id, "findings": s.report_findings, "impression": s.report_impression}) + "\n"
            for s in paired[:16]))
    (out / "realism.json").write_text(json.dumps(res, indent=2))
    return res


def synthesise_for_reports(model_dir: Path, data: Path | None, val: list, steps: int | None, guidance: float | None,
                           batch: int = 16, condition: bool | None = None,
                           head_guidance: float | None = None) -> list[np.ndarray]:
    """One generated image per val sample from its (composed, seed 0) report, batched; `condition` tells a
    finding-conditioned model the report's findings and `head_guidance` steers the tokens with the finding head
    towards them (both default to the model's sampling config), as MedimPipeline.synthesise does."""
    import torch

    from engines.data.paired import SentenceBank, pair_reports
    from engines.pipeline import MedimPipeline
    from engines.sampling.finding_states import state_row
    from engines.sampling.unmask import unmask

    pipe = MedimPipeline.from_pretrained(model_dir)
    cfg = pipe.model_config
    paired = pair_reports(val, SentenceBank.from_iu(), seed=0)
    images = []
    opts = pipe._opts(steps, guidance, None)
    if head_guidance and not cfg.findings:
        raise ValueError("head guidance needs a model with a finding head")
    for k in range(0, len(paired), batch):
        chunk = paired[k:k + batch]
        reports = [f"{s.report_findings}\nIMPRESSION: {s.report_impression}" for s in chunk]
        text = pipe._tensor([pipe._report_ids(r) for r in reports])
        image = torch.full((len(chunk), cfg.image_len), cfg.image_mask_id, dtype=torch.long)
        states = [pipe._report_states(r, condition) for r in reports]
        told = None if states[0] is None else torch.tensor(
            [state_row(st, cfg.findings) for st in states], dtype=torch.float32, device=pipe.device)
        bias = pipe.synthesis_bias(reports, head_guidance)
        res = unmask(pipe._net, text, image, opts=opts, generator=torch.Generator().manual_seed(k),
                     uncond=(torch.full_like(text, cfg.text_mask_id), image), finding_states=told, image_bias=bias)
        for row in res.image:
            images.append(pipe.decode_tokens(row.reshape(cfg.image_grid, cfg.image_grid).numpy()))
    return images
