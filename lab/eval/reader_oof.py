"""Out-of-fold finding-reader features of the train images, for lab.eval.tune_sentences.

    python -m lab.eval.reader_oof --out F.npz [--epochs 20] [--only K --parts DIR] [--merge --parts DIR]

The tuner must see the reader as it reads unseen images: the shipped reader was trained on every train image,
so its own probabilities and embeddings there are too good (an in-sample embedding encodes the labels). Here
each of the tuner's 5 grouped folds (lab.eval.tune_sentences.fold_of: whole split groups) is read by a reader
trained on the other four, the way `radstation-train reader` builds it (lab.training.reader_fit: the shipped
lung boxes and crops, the CNN with the shipped training settings, the linear readout), then the out-of-fold
scores are standardised, combined and Platt-calibrated as reader_fit does. `--epochs` may train the CNN shorter
than the shipped 20 epochs on a busy machine (a weaker reader: the tuner then leans more on similar cases than
the shipped reader needs; say so with the numbers). `--only K` trains one fold into `--parts` (run the folds in
parallel), `--merge` combines the parts. Writes ids, probs (calibrated), emb (unit-norm CNN pooled features),
names: the tuner's --features format.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

FOLDS = 5


def _inputs(model: Path, data: Path | None) -> dict:
    from engines.reader.reader import FindingReader
    from lab.data.cxr import load_cxr
    from lab.eval.tune_sentences import fold_of

    reader = FindingReader.from_pretrained(model / "reader")
    train = list(load_cxr(data, splits=("train",)))
    imgs = [np.asarray(s.load_image()) for s in train]
    crops = np.concatenate([reader.prepare(imgs[i:i + 64])[0] for i in range(0, len(imgs), 64)])
    groups = [str(s.extra.get("split_group") or s.patient_id) for s in train]
    return {"reader": reader, "ids": np.array([s.image_id for s in train]), "crops": crops,
            "y": np.array([[float(s.findings.get(k) == 1) for k in reader.findings] for s in train], np.float32),
            "known": np.array([[s.findings.get(k) is not None for k in reader.findings] for s in train]),
            "source": np.array([s.source for s in train]), "fold": np.array([fold_of(g, FOLDS) for g in groups])}


def fit_fold(inp: dict, model: Path, f: int, epochs: int | None) -> dict[str, np.ndarray]:
    """Scores of fold f's images by a reader (CNN + linear readout) trained on the other folds."""
    from engines.reader.preprocess import normalise
    from lab.training.reader_fit import linear_features
    from lab.training.reader_linear import fit_linear
    from lab.training.reader_train import ReaderTrainConfig, predict, train_reader

    cfg = inp["reader"].config
    t = json.loads((model / "reader" / "training.json").read_text())
    tcfg = ReaderTrainConfig(**{**t["train"], **({"epochs": epochs} if epochs else {})})
    fit, hold = inp["fold"] != f, inp["fold"] == f
    feats = linear_features(inp["crops"], cfg)
    ro = fit_linear(feats[fit], inp["y"][fit], inp["known"][fit], c=t["linear"]["c"], pca=t["linear"]["pca"])
    x = np.stack([normalise(c, cfg.normalise) for c in inp["crops"]])
    net = train_reader(x[fit], inp["y"][fit], inp["known"][fit], inp["source"][fit], cfg, tcfg,
                       log=lambda s: print(f"fold {f} {s}", file=sys.stderr, flush=True))
    cnn, emb = predict(net, x[hold])
    return {"idx": np.flatnonzero(hold), "cnn": cnn, "lin": ro.logits(feats[hold]), "emb": emb}


def merge(inp: dict, parts: Sequence[dict]) -> dict[str, np.ndarray]:
    """The tuner's features from the folds' scores: standardised per component on the out-of-fold scores,
    combined with the reader's weights, Platt-calibrated per finding (lab.training.reader_fit)."""
    from lab.training.reader_fit import combine_scores, fit_platt

    reader = inp["reader"]
    n, k = inp["y"].shape
    scores = {"cnn": np.zeros((n, k)), "linear": np.zeros((n, k))}
    emb = None
    for p in parts:
        scores["cnn"][p["idx"]], scores["linear"][p["idx"]] = p["cnn"], p["lin"]
        emb = np.zeros((n, p["emb"].shape[1]), np.float32) if emb is None else emb
        emb[p["idx"]] = p["emb"]
    if sorted(np.concatenate([p["idx"] for p in parts]).tolist()) != list(range(n)):
        raise ValueError("the parts do not cover every train image exactly once")
    known, truth = inp["known"], inp["y"] > 0
    weights = reader.config.combine
    norm = {c: np.array([[s[known[:, j], j].mean(), s[known[:, j], j].std() or 1.0] for j in range(k)])
            for c, s in scores.items() if c in weights}
    combined = combine_scores({c: scores[c] for c in weights}, weights, norm)
    probs = np.zeros((n, k), np.float32)
    for j in range(k):
        a, b = fit_platt(combined[known[:, j], j], truth[known[:, j], j])
        probs[:, j] = 1.0 / (1.0 + np.exp(-(a * combined[:, j] + b)))
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return {"ids": inp["ids"], "probs": probs, "emb": emb.astype(np.float32), "names": np.array(reader.findings)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.eval.reader_oof", description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=None, help="CNN epochs (default: the shipped reader's)")
    ap.add_argument("--only", type=int, default=None, help="train this fold only, into --parts")
    ap.add_argument("--merge", action="store_true", help="combine the folds in --parts")
    ap.add_argument("--parts", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if (args.only is not None or args.merge) and args.parts is None:
        ap.error("--only and --merge need --parts")
    import torch

    from engines.default_weights import DEFAULT_WEIGHTS

    torch.set_num_threads(max(args.threads, 1))
    model = Path(args.model or DEFAULT_WEIGHTS)
    inp = _inputs(model, args.data)
    if args.only is not None:
        args.parts.mkdir(parents=True, exist_ok=True)
        np.savez(args.parts / f"fold{args.only}.npz", **fit_fold(inp, model, args.only, args.epochs))
        return 0
    if args.merge:
        parts = [dict(np.load(args.parts / f"fold{f}.npz")) for f in range(FOLDS)]
    else:
        parts = [fit_fold(inp, model, f, args.epochs) for f in range(FOLDS)]
    np.savez(args.out, **merge(inp, parts))
    print(f"out-of-fold reader features of {len(inp['ids'])} train images -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
