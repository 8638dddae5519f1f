"""`radstation-train reader`: train the finding reader end to end and write a reader folder.

1. the lung-box regressor on the training images that carry lung boxes;
2. K-fold cross-validation on the training split (whole patients per fold) of each component (CNN, linear readout):
   out-of-fold scores give the CV tables (overall / NIH-only / per source, per component and combined), each
   component's standardisation and each finding's Platt calibration - val is never used to choose or fit anything;
3. the components on the whole training split: `members` CNNs (seeds 0..members-1) and the linear readout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from engines.reader.config import ReaderConfig
from engines.reader.features import FeatureSpec, image_features
from engines.reader.lungbox import predict_lung_boxes
from engines.reader.preprocess import content_box, expand_box, normalise, square_crop
from engines.reader.reader import FindingReader
from lab.training.lungbox_train import box_iou, train_lungbox
from lab.training.reader_linear import fit_linear
from lab.training.reader_train import ReaderTrainConfig, group_folds, predict, train_reader

OOF_FILE = "oof_train.npz"


def load_arrays(samples: Sequence, findings: Sequence[str]) -> dict[str, np.ndarray]:
    """uint8 images as stored (N, S, S), labels, which labels the source speaks to, lung boxes (NaN where none)."""
    from PIL import Image

    imgs = np.stack([np.asarray(Image.open(s.image_path).convert("L")) for s in samples])
    y = np.array([[float(s.findings.get(k) == 1) for k in findings] for s in samples], np.float32)
    known = np.array([[s.findings.get(k) is not None for k in findings] for s in samples])
    lung = np.full((len(samples), 4), np.nan, np.float32)
    for i, s in enumerate(samples):
        bs = [b for b in s.boxes if b.kind == "anatomy"]
        if bs:
            lung[i] = [min(b.x for b in bs), min(b.y for b in bs), max(b.x + b.w for b in bs),
                       max(b.y + b.h for b in bs)]
    return {"imgs": imgs, "y": y, "known": known, "lung": lung,
            "source": np.array([s.source for s in samples]),
            "group": np.array([str(s.extra.get("split_group") or s.patient_id) for s in samples])}


def reader_crops(imgs: np.ndarray, cfg: ReaderConfig, lung_boxes: np.ndarray | None) -> np.ndarray:
    """(N, size, size) uint8 raw crops as FindingReader.prepare makes them."""
    out = []
    for i, u8 in enumerate(imgs):
        h, w = u8.shape
        if cfg.crop == "none":
            box = (0.0, 0.0, float(w), float(h))
        elif cfg.crop == "trim":
            box = tuple(map(float, content_box(u8)))
        else:
            box = expand_box(tuple(map(float, lung_boxes[i])), cfg.crop_margin, w, h)
        out.append(square_crop(u8, box, cfg.size))
    return np.stack(out)


def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) of sigmoid(a * logit + b) minimising the log loss; (1, 0) when one class is absent."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y, bool)
    if y.all() or not y.any():
        return 1.0, 0.0
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(np.asarray(logits, np.float64)[:, None], y)
    a = float(lr.coef_[0, 0])
    return (a, float(lr.intercept_[0])) if a > 0 else (1.0, 0.0)


def cross_validate(crops: np.ndarray, arrays: dict, cfg: ReaderConfig, tcfg: ReaderTrainConfig, folds: int,
                   log: Callable[[str], None], *, linear_c: float, linear_pca: int) -> dict[str, np.ndarray]:
    """Out-of-fold scores (N, K) per component of cfg.combine over the training arrays."""
    fold = group_folds(arrays["group"], folds, seed=tcfg.seed)
    out = {c: np.zeros((len(crops), len(cfg.findings)), np.float32) for c in cfg.combine}
    x = np.stack([normalise(c, cfg.normalise) for c in crops]) if "cnn" in cfg.combine else None
    feats = linear_features(crops, cfg) if "linear" in cfg.combine else None
    for f in range(folds):
        fit, hold = fold != f, fold == f
        if x is not None:
            net = train_reader(x[fit], arrays["y"][fit], arrays["known"][fit], arrays["source"][fit], cfg, tcfg,
                               log=lambda s, f=f: log(f"fold {f + 1}/{folds} {s}"))
            out["cnn"][hold] = predict(net, x[hold])[0]
        if feats is not None:
            ro = fit_linear(feats[fit], arrays["y"][fit], arrays["known"][fit], c=linear_c, pca=linear_pca)
            out["linear"][hold] = ro.logits(feats[hold])
            log(f"fold {f + 1}/{folds} linear readout fitted")
    return out


def linear_features(crops: np.ndarray, cfg: ReaderConfig) -> np.ndarray:
    spec = FeatureSpec.from_dict(cfg.features)
    return np.stack([image_features(normalise(c, cfg.feature_normalise), spec) for c in crops])


def combine_scores(scores: dict[str, np.ndarray], weights: dict[str, float],
                   norm: dict[str, np.ndarray]) -> np.ndarray:
    """Weighted mean of the components' standardised scores (norm[c]: (K, 2) mean, std)."""
    total = sum(w * (scores[c] - norm[c][:, 0]) / norm[c][:, 1] for c, w in weights.items())
    return total / sum(weights.values())


def fit_reader(data: Path | None, out: Path, cfg: ReaderConfig, tcfg: ReaderTrainConfig, *, folds: int = 3,
               members: int = 1, lungbox_epochs: int = 60, linear_c: float = 3e-4, linear_pca: int = 128,
               resamples: int = 500, log: Callable[[str], None] = print) -> dict:
    """Train and save a reader folder; returns the summary written to out/training.json."""
    import torch

    from lab.data.cxr import load_cxr
    from lab.eval.by_source import format_table, scores_by_source

    torch.set_num_threads(tcfg.threads)
    train = list(load_cxr(data, splits=("train",)))
    arrays = load_arrays(train, cfg.findings)
    summary: dict = {"n_train": len(train), "train": tcfg.to_dict(), "combine": cfg.combine,
                     "linear": {"c": linear_c, "pca": linear_pca, "features": cfg.features}}
    lungbox = None
    lung_boxes = None
    if cfg.crop == "lung":
        has = ~np.isnan(arrays["lung"][:, 0])
        lb_folds = group_folds(arrays["group"][has], 5)
        ious = np.zeros(int(has.sum()))
        idx = np.flatnonzero(has)
        for f in range(5):  # how well the box model finds lungs it was not trained on
            net = train_lungbox(arrays["imgs"][idx[lb_folds != f]], arrays["lung"][idx[lb_folds != f]],
                                epochs=lungbox_epochs, log=lambda s: None)
            pred = predict_lung_boxes(net, list(arrays["imgs"][idx[lb_folds == f]]))
            ious[lb_folds == f] = box_iou(pred, arrays["lung"][idx[lb_folds == f]])
        summary["lungbox_cv_iou"] = {"n": int(has.sum()), "mean": float(ious.mean()),
                                     "below_0.5": float((ious < 0.5).mean())}
        log(f"lung box 5-fold IoU {ious.mean():.3f} on {int(has.sum())} images")
        lungbox = train_lungbox(arrays["imgs"][has], arrays["lung"][has], epochs=lungbox_epochs, log=log)
        lung_boxes = predict_lung_boxes(lungbox, list(arrays["imgs"]))
    crops = reader_crops(arrays["imgs"], cfg, lung_boxes)
    oof = cross_validate(crops, arrays, cfg, tcfg, folds, log, linear_c=linear_c, linear_pca=linear_pca)
    truth = arrays["y"].astype(bool)
    known = arrays["known"]
    norm = {c: np.array([[s[known[:, j], j].mean(), s[known[:, j], j].std() or 1.0] for j in range(s.shape[1])])
            for c, s in oof.items()}
    combined = combine_scores(oof, cfg.combine, norm)
    summary["cv_tables"], summary["cv_macro"] = {}, {}
    for name, scores in [*oof.items(), ("combined", combined)]:
        rows = scores_by_source(truth, scores, cfg.findings, arrays["source"], arrays["group"], resamples=resamples)
        summary["cv_tables"][name] = format_table(rows, cfg.findings)
        summary["cv_macro"][name] = {r.name: [r.macro, r.macro_ci] for r in rows[:2]}
        log(f"CV on the training folds, {name}:\n" + summary["cv_tables"][name])
    calibration = {k: fit_platt(combined[known[:, j], j], truth[known[:, j], j]) for j, k in enumerate(cfg.findings)}
    prevalence = {k: float(truth[known[:, j], j].mean()) for j, k in enumerate(cfg.findings)}
    cfg = replace(cfg, calibration=calibration, prevalence=prevalence,
                  component_norm={c: {k: tuple(map(float, n[j])) for j, k in enumerate(cfg.findings)}
                                  for c, n in norm.items()})
    nets = []
    if "cnn" in cfg.combine:
        x = np.stack([normalise(c, cfg.normalise) for c in crops])
        for m in range(members):
            nets.append(train_reader(x, arrays["y"], known, arrays["source"], cfg, replace(tcfg, seed=tcfg.seed + m),
                                     log=lambda s, m=m: log(f"member {m + 1}/{members} {s}")))
    linear = None
    if "linear" in cfg.combine:
        linear = fit_linear(linear_features(crops, cfg), arrays["y"], known, c=linear_c, pca=linear_pca)
    reader = FindingReader(cfg, nets, lungbox, linear=linear)
    reader.save(out)
    # the reader's out-of-fold train probabilities, as it outputs them: what `radstation-eval calibration
    # --fit-train` chooses and fits the per-finding calibration on, without val and without retraining
    np.savez_compressed(out / OOF_FILE, ids=np.array([s.image_id for s in train]), names=np.array(cfg.findings),
                        probs=reader.calibrated(combined).astype(np.float32))
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
