"""Val AUROC of a model folder's auxiliary finding head: how well the backbone's image-token states encode
the findings, next to what the token probe (engines.eval.token_probe) reads from the same tokens.

    python -m engines.eval.finding_head --model resources/weights/medim-small --split val --threads 2
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engines.eval.auroc import auroc


def head_aurocs(pipe, samples: Sequence, batch: int = 32) -> dict:
    """Per finding of the head: positives among `samples` and the AUROC of its probability."""
    names = pipe.model_config.findings
    if not names:
        raise ValueError("these weights have no finding head (trained without --finding-weight)")
    probs: list[dict[str, float]] = []
    for i in range(0, len(samples), batch):
        probs += pipe.finding_probabilities([s.load_image() for s in samples[i:i + batch]])
    from engines.training.finding_targets import finding_targets

    truth = finding_targets(samples, names).numpy().astype(bool)
    rows = {}
    for j, k in enumerate(names):
        rows[k] = {"positives": int(truth[:, j].sum()), "auroc": auroc(truth[:, j], np.array([p[k] for p in probs]))}
    valid = [r["auroc"] for r in rows.values() if r["auroc"] is not None]
    return {"n_images": len(samples), "findings": rows, "macro_auroc": float(np.mean(valid)) if valid else None}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.eval.finding_head", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped weights)")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--split", default="val")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    import torch

    from engines.data.cxr import load_cxr
    from engines.default_weights import DEFAULT_WEIGHTS
    from engines.pipeline import MedimPipeline

    torch.set_num_threads(args.threads)
    pipe = MedimPipeline.from_pretrained(args.model or DEFAULT_WEIGHTS, device="cpu")
    samples = list(load_cxr(args.data, splits=(args.split,)))
    try:
        res = head_aurocs(pipe, samples)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Finding head of {args.model or DEFAULT_WEIGHTS} ({res['n_images']} {args.split} images)\n\n"
          "| finding | positives | AUROC |\n|---|---:|---:|")
    for k, r in res["findings"].items():
        a = "n/a" if r["auroc"] is None else f"{r['auroc']:.3f}"
        print(f"| {k} | {r['positives']} | {a} |")
    print(f"| macro | | {res['macro_auroc']:.3f} |" if res["macro_auroc"] is not None else "| macro | | n/a |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
