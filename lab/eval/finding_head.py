"""Val AUROC of the engine's reading - the finding reader (engines.reader) when the model folder ships one, else the
backbone's auxiliary finding head - overall, within the NIH images (the headline: no source shortcut there) and per
source, with patient-level bootstrap intervals; beside it, how well a linear classifier tells NIH from non-NIH images
from the reading's features, and from the labels alone (the floor the labels allow).

    python -m lab.eval.finding_head --split val                 # the shipped reading
    python -m lab.eval.finding_head --split val --reading head  # the backbone's head, for comparison
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lab.eval.by_source import format_finding_ci_table, format_table, scores_by_source, source_readability


def reading_of(pipe, images: list[np.ndarray], reading: str, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, K) over pipe.reading_findings or the head's findings, features (N, D))."""
    probs, feats = [], []
    for i in range(0, len(images), batch):
        chunk = images[i:i + batch]
        if reading == "reader":
            if pipe.reader is None:
                raise ValueError("this model folder ships no finding reader (reader/)")
            crops, _ = pipe.reader.prepare(chunk)
            logits, f = pipe.reader.scores_of_crops(crops)
            probs.append(pipe.reader.calibrated(logits))
            feats.append(f)
        else:
            if not pipe.model_config.findings:
                raise ValueError("these weights have no finding head (trained without --finding-weight)")
            p = pipe.finding_probabilities_of_codes([pipe._codes(im) for im in chunk])
            probs.append(np.array([[d[k] for k in pipe.model_config.findings] for d in p]))
            reader, pipe.reader = pipe.reader, None
            try:
                feats.append(pipe.image_embedding(chunk))
            finally:
                pipe.reader = reader
    return np.concatenate(probs), np.concatenate(feats)


def head_aurocs(pipe, samples: Sequence, batch: int = 32) -> dict:
    """Per finding of the backbone's head: positives among `samples` and the AUROC of its probability."""
    from lab.eval.auroc import auroc
    from lab.training.finding_targets import finding_targets

    names = pipe.model_config.findings
    probs, _ = reading_of(pipe, [s.load_image() for s in samples], "head", batch)
    truth = finding_targets(samples, names).numpy().astype(bool)
    rows = {k: {"positives": int(truth[:, j].sum()), "auroc": auroc(truth[:, j], probs[:, j])}
            for j, k in enumerate(names)}
    valid = [r["auroc"] for r in rows.values() if r["auroc"] is not None]
    return {"n_images": len(samples), "findings": rows, "macro_auroc": float(np.mean(valid)) if valid else None}


def evaluate_reading(pipe, samples: Sequence, train_samples: Sequence, reading: str, *, resamples: int = 1000
                     ) -> dict:
    """The issue-28 table for `samples` plus source readability fitted on `train_samples` (skipped, None, when
    `train_samples` is empty)."""
    from lab.training.finding_targets import finding_targets

    names = pipe.reading_findings if reading == "reader" else pipe.model_config.findings
    probs, feats = reading_of(pipe, [s.load_image() for s in samples], reading)
    truth = finding_targets(samples, names).numpy().astype(bool)
    sources = [s.source for s in samples]
    groups = [str(s.extra.get("split_group") or s.patient_id) for s in samples]
    rows = scores_by_source(truth, probs, names, sources, groups, resamples=resamples)
    if not train_samples:
        return {"reading": reading, "n_images": len(samples), "findings": list(names), "rows": rows,
                "source_auroc_features": None, "source_auroc_probabilities": None, "source_auroc_labels": None}
    train_probs, train_feats = reading_of(pipe, [s.load_image() for s in train_samples], reading)
    train_sources = [s.source for s in train_samples]
    train_truth = finding_targets(train_samples, names).numpy()
    return {
        "reading": reading, "n_images": len(samples), "findings": list(names), "rows": rows,
        "source_auroc_features": source_readability(train_feats, train_sources, feats, sources),
        "source_auroc_probabilities": source_readability(train_probs, train_sources, probs, sources),
        "source_auroc_labels": source_readability(train_truth, train_sources, truth.astype(float), sources),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.eval.finding_head", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped weights)")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--split", default="val")
    p.add_argument("--reading", choices=("auto", "reader", "head"), default="auto",
                   help="which component to evaluate (auto: the one the pipeline uses)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    p.add_argument("--no-readability", action="store_true",
                   help="skip source readability (it reads every train image too)")
    args = p.parse_args(argv)

    import torch

    from engines.default_weights import DEFAULT_WEIGHTS
    from engines.pipeline import MedimPipeline
    from lab.data.cxr import load_cxr

    torch.set_num_threads(args.threads)
    pipe = MedimPipeline.from_pretrained(args.model or DEFAULT_WEIGHTS, device="cpu")
    reading = pipe.reading_source if args.reading == "auto" else args.reading
    samples = list(load_cxr(args.data, splits=(args.split,)))
    train = [] if args.no_readability else list(load_cxr(args.data, splits=("train",)))
    try:
        res = evaluate_reading(pipe, samples, train, reading, resamples=args.resamples)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fa, pa, la = res["source_auroc_features"], res["source_auroc_probabilities"], res["source_auroc_labels"]
    print(f"Finding {reading} of {args.model or DEFAULT_WEIGHTS} on {res['n_images']} {args.split} images "
          f"(AUROC, positives in brackets; macro over findings with >= 5 positives in the subset; "
          f"95% intervals from {args.resamples} patient-level bootstrap resamples)\n")
    print(format_table(res["rows"], res["findings"]))
    print(f"\nPer finding, with 95% intervals ({args.resamples // 2} patient-level bootstrap resamples):\n")
    print(format_finding_ci_table(res["rows"], res["findings"]))
    if fa is not None:
        print(f"\nSource readability (NIH vs other collections, logistic regression fitted on train): "
              f"from the {reading}'s features {fa:.3f}; from its {len(res['findings'])} probabilities {pa:.3f}; "
              f"from the true labels alone {la:.3f} (the floor the labels allow)")
    if args.json:
        out = {k: v for k, v in res.items() if k != "rows"}
        out["rows"] = [{"subset": r.name, "n_images": r.n_images, "macro": r.macro, "macro_ci": r.macro_ci,
                        "macro_findings": r.macro_findings, "auroc": r.auroc, "auroc_ci": r.auroc_ci,
                        "positives": r.positives}
                       for r in res["rows"]]
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
