"""Cheap changes to the finding reader, judged by grouped out-of-fold AUROC on the train split (issues 23/25).

    python -m lab.eval.reader_variants [--model DIR] [--cnn-folds 0,1] [--cnn-dir DIR] [--pca 256,512]
                                       [--out FILE.md]

Test-time augmentation (TTA) that keeps laterality - the lung-field crop slightly zoomed, shifted or under another
contrast curve, never flipped left-right - is scored against the single shipped view:
- for the linear readout on all 5 grouped folds of lab.eval.reader_oof (whole split groups per fold): the readout
  is refitted on 4 folds and reads the 5th, once as shipped and once as the mean logit over the views;
- for the CNN on the folds named by --cnn-folds: a network with the shipped training settings is trained on the
  other folds (or loaded from --cnn-dir, where trained ones are kept as fold{f}.pt) and reads its fold's images
  in every view; the CNN alone and the shipped 1:2 combination with the linear readout are scored on those images;
- --pca: the linear readout on more (or fewer) principal components of its features, shipped view.
Macro AUROC as reader_fit scores it (labels a source does not speak to count as absent, findings with >= 5
positives), overall and within NIH, with a paired patient-level bootstrap interval of each difference: a change
is only worth shipping when that interval clears zero. Val is never read here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lab.eval.auroc import auroc
from lab.eval.bootstrap import cluster_bootstrap
from lab.eval.by_source import NIH_SOURCES

FOLDS = 5
# (zoom of the lung box, shift x and y as a share of the crop side, gamma of the intensities): each keeps the
# patient's left on the image's right; a left-right flip would swap the side of every lateral finding.
VIEWS: dict[str, tuple[float, float, float, float]] = {
    "zoom 0.94": (0.94, 0.0, 0.0, 1.0), "zoom 1.06": (1.06, 0.0, 0.0, 1.0),
    "shift x -3%": (1.0, -0.03, 0.0, 1.0), "shift x +3%": (1.0, 0.03, 0.0, 1.0),
    "shift y -3%": (1.0, 0.0, -0.03, 1.0), "shift y +3%": (1.0, 0.0, 0.03, 1.0),
    "gamma 0.85": (1.0, 0.0, 0.0, 0.85), "gamma 1.15": (1.0, 0.0, 0.0, 1.15),
}
VIEW_SETS: dict[str, tuple[str, ...]] = {
    "zoom (3 views)": ("zoom 0.94", "zoom 1.06"),
    "shift (5 views)": ("shift x -3%", "shift x +3%", "shift y -3%", "shift y +3%"),
    "contrast (3 views)": ("gamma 0.85", "gamma 1.15"),
    "all (9 views)": tuple(VIEWS),
}


def view_crop(u8: np.ndarray, box: tuple[float, float, float, float], view: tuple[float, float, float, float],
              size: int) -> np.ndarray:
    """The reader's square lung-field crop of `u8` around `box` under one view (zoom, dx, dy, gamma); the
    identity view (1, 0, 0, 1) is exactly FindingReader.prepare's crop."""
    from engines.reader.preprocess import square_crop

    zoom, dx, dy, gamma = view
    x0, y0, x1, y1 = box
    w, h = (x1 - x0) * zoom, (y1 - y0) * zoom
    side = max(w, h)
    cx, cy = (x0 + x1) / 2 + dx * side, (y0 + y1) / 2 + dy * side
    crop = square_crop(u8, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), size)
    if gamma != 1.0:
        curved = np.clip(np.round(255 * (crop / 255.0) ** gamma), 1, 255)
        crop = np.where(crop > 0, curved, 0).astype(np.uint8)  # black stays black: outside the image
    return crop


def macro_auroc(truth: np.ndarray, scores: np.ndarray, idx: np.ndarray, min_positives: int = 5) -> float | None:
    vals = []
    for j in range(truth.shape[1]):
        t = truth[idx, j]
        if min_positives <= t.sum() <= len(t) - min_positives:
            vals.append(auroc(t, scores[idx, j]))
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def paired_difference(truth: np.ndarray, base: np.ndarray, other: np.ndarray, groups: np.ndarray, mask: np.ndarray,
                      resamples: int, seed: int = 0) -> tuple[float, tuple[float, float] | None]:
    """(macro AUROC of `other` minus `base` on the masked images, its paired patient-level 95% interval)."""
    rows = np.flatnonzero(mask)

    def diff(i: np.ndarray) -> float | None:
        a, b = macro_auroc(truth, base, rows[i]), macro_auroc(truth, other, rows[i])
        return None if a is None or b is None else b - a

    return diff(np.arange(len(rows))), cluster_bootstrap(diff, groups[rows], resamples=resamples, seed=seed)


def _inputs(model: Path, data: Path | None) -> dict:
    from engines.reader.reader import FindingReader
    from lab.data.cxr import load_cxr
    from lab.eval.tune_sentences import fold_of

    reader = FindingReader.from_pretrained(model / "reader")
    train = list(load_cxr(data, splits=("train",)))
    imgs = [np.asarray(s.load_image()) for s in train]
    boxes: list = []
    for i in range(0, len(imgs), 64):
        boxes += reader.crop_boxes(imgs[i:i + 64])
    groups = np.array([str(s.extra.get("split_group") or s.patient_id) for s in train])
    return {"reader": reader, "imgs": imgs, "boxes": boxes, "group": groups,
            "y": np.array([[float(s.findings.get(k) == 1) for k in reader.findings] for s in train], np.float32),
            "known": np.array([[s.findings.get(k) is not None for k in reader.findings] for s in train]),
            "source": np.array([s.source for s in train]), "fold": np.array([fold_of(g, FOLDS) for g in groups])}


def view_crops(inp: dict, view: tuple[float, float, float, float]) -> np.ndarray:
    from engines.reader.preprocess import _as_u8

    size = inp["reader"].config.size
    return np.stack([view_crop(_as_u8(im), tuple(b), view, size) for im, b in zip(inp["imgs"], inp["boxes"],
                                                                                 strict=True)])


def _table(title: str, truth: np.ndarray, variants: dict[str, np.ndarray], base: str, inp: dict, mask: np.ndarray,
           resamples: int) -> str:
    nih = np.isin(inp["source"], NIH_SOURCES)
    lines = [f"**{title}** ({int(mask.sum())} images, {int((mask & nih).sum())} NIH; paired 95% interval of the "
             f"difference to '{base}', {resamples} patient-level resamples)", "",
             "| variant | overall macro AUROC | difference | NIH only | difference |", "|---|---:|---:|---:|---:|"]
    for name, s in variants.items():
        cells = []
        for m in (mask, mask & nih):
            value = macro_auroc(truth, s, np.flatnonzero(m))
            if name == base:
                cells += [f"{value:.4f}", ""]
                continue
            d, ci = paired_difference(truth, variants[base], s, inp["group"], m, resamples)
            cells += [f"{value:.4f}", f"{d:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else f"{d:+.4f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def linear_variants(inp: dict, feats: dict[str, np.ndarray], c: float, pca: int, other_pca: Sequence[int] = ()
                    ) -> dict[str, np.ndarray]:
    """Out-of-fold linear-readout logits: shipped view, the mean over each view set, and the shipped view read by
    a readout on `other_pca` principal components instead of `pca`."""
    from lab.training.reader_linear import fit_linear

    out = {"shipped view": np.zeros(inp["y"].shape)} | {f"TTA {k}": np.zeros(inp["y"].shape) for k in VIEW_SETS}
    out |= {f"shipped view, PCA {n} (shipped {pca})": np.zeros(inp["y"].shape) for n in other_pca}
    for f in range(FOLDS):
        fit, hold = inp["fold"] != f, inp["fold"] == f
        ro = fit_linear(feats["identity"][fit], inp["y"][fit], inp["known"][fit], c=c, pca=pca)
        logits = {v: ro.logits(x[hold]) for v, x in feats.items()}
        out["shipped view"][hold] = logits["identity"]
        for k, views in VIEW_SETS.items():
            out[f"TTA {k}"][hold] = np.mean([logits["identity"], *(logits[v] for v in views)], 0)
        for n in other_pca:
            other = fit_linear(feats["identity"][fit], inp["y"][fit], inp["known"][fit], c=c, pca=n)
            out[f"shipped view, PCA {n} (shipped {pca})"][hold] = other.logits(feats["identity"][hold])
        print(f"linear readout: fold {f + 1}/{FOLDS}", file=sys.stderr, flush=True)
    return out


def cnn_views(inp: dict, crops: dict[str, np.ndarray], folds: Sequence[int], model: Path, cnn_dir: Path | None,
              epochs: int | None) -> dict[str, np.ndarray]:
    """Per view, the logits of each named fold's images by a CNN trained on the other folds (NaN elsewhere)."""
    import torch

    from engines.reader.network import ReaderNet
    from lab.training.reader_train import ReaderTrainConfig, predict, train_reader

    cfg = inp["reader"].config
    t = json.loads((model / "reader" / "training.json").read_text())
    tcfg = ReaderTrainConfig(**{**t["train"], **({"epochs": epochs} if epochs else {})})
    out = {v: np.full(inp["y"].shape, np.nan) for v in crops}
    for f in folds:
        fit, hold = inp["fold"] != f, inp["fold"] == f
        kept = cnn_dir / f"fold{f}.pt" if cnn_dir else None
        if kept is not None and kept.is_file():
            net = ReaderNet(cfg)
            net.load_state_dict(torch.load(kept))
        else:
            net = train_reader(crops["identity"][fit], inp["y"][fit], inp["known"][fit], inp["source"][fit], cfg,
                               tcfg, log=lambda s, f=f: print(f"CNN fold {f}: {s}", file=sys.stderr, flush=True))
            if kept is not None:
                kept.parent.mkdir(parents=True, exist_ok=True)
                torch.save(net.state_dict(), kept)
        for v, x in crops.items():
            out[v][hold] = predict(net, x[hold])[0]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.eval.reader_variants", description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--cnn-folds", default="", help="comma-separated folds (0-4) to train/load a CNN for")
    ap.add_argument("--cnn-dir", type=Path, default=None, help="where fold CNNs are kept (fold{f}.pt)")
    ap.add_argument("--epochs", type=int, default=None, help="CNN epochs (default: the shipped reader's)")
    ap.add_argument("--pca", default="", help="comma-separated other PCA sizes of the linear readout to score")
    ap.add_argument("--resamples", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="also write the tables (markdown)")
    args = ap.parse_args(argv)
    import torch

    from engines.default_weights import DEFAULT_WEIGHTS
    from lab.training.reader_fit import linear_features

    torch.set_num_threads(max(args.threads, 1))
    model = Path(args.model or DEFAULT_WEIGHTS)
    try:
        folds = [int(f) for f in args.cnn_folds.split(",") if f.strip()]
    except ValueError:
        ap.error(f"--cnn-folds must be comma-separated fold numbers, got {args.cnn_folds!r}")
    if any(not 0 <= f < FOLDS for f in folds):
        ap.error(f"--cnn-folds must lie in 0..{FOLDS - 1}")
    try:
        other_pca = [int(n) for n in args.pca.split(",") if n.strip()]
    except ValueError:
        ap.error(f"--pca must be comma-separated sizes, got {args.pca!r}")
    inp = _inputs(model, args.data)
    cfg = inp["reader"].config
    crops = {"identity": view_crops(inp, (1.0, 0.0, 0.0, 1.0))} | {v: view_crops(inp, p) for v, p in VIEWS.items()}
    feats = {v: linear_features(x, cfg) for v, x in crops.items()}
    t = json.loads((model / "reader" / "training.json").read_text())
    truth = inp["y"] > 0
    every = np.ones(len(truth), bool)
    lin = linear_variants(inp, feats, t["linear"]["c"], t["linear"]["pca"], other_pca)
    out = [_table(f"Linear readout, {FOLDS} grouped folds", truth, lin, "shipped view", inp, every, args.resamples)]
    if folds:
        cnn = cnn_views(inp, crops, folds, model, args.cnn_dir, args.epochs)
        mask = np.isin(inp["fold"], folds)

        def z(s: np.ndarray) -> np.ndarray:
            return (s - s[mask].mean(0)) / s[mask].std(0)

        w = cfg.combine
        variants: dict[str, np.ndarray] = {}
        for k, views in {"shipped view": (), **VIEW_SETS}.items():
            c = np.mean([cnn["identity"], *(cnn[v] for v in views)], 0)
            variants[f"CNN, {k}"] = c
            lin_k = lin["shipped view"] if not views else lin[f"TTA {k}"]
            variants[f"CNN + linear {w.get('cnn', 0):g}:{w.get('linear', 0):g}, {k}"] = \
                (w.get("cnn", 0) * z(c) + w.get("linear", 0) * z(lin_k)) / sum(w.values())
        out.append(_table(f"CNN on folds {args.cnn_folds} (each trained on the other folds)", truth,
                          {k: v for k, v in variants.items() if k.startswith("CNN,")}, "CNN, shipped view", inp,
                          mask, args.resamples))
        combined = {k: v for k, v in variants.items() if not k.startswith("CNN,")}
        out.append(_table(f"CNN + linear readout on folds {args.cnn_folds}", truth, combined, next(iter(combined)),
                          inp, mask, args.resamples))
    text = "\n\n".join(out)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
