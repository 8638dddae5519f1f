"""`radstation-eval scope fit|measure`: fit the input gate's statistics next to a model's weights, and
measure the gate (OOD AUROC per out-of-scope category, decisions at the shipped thresholds).

    radstation-eval scope fit [--model DIR] [--reject-percent 2]      # writes DIR/scope.json + scope.npz
    radstation-eval scope measure [--model DIR] [--split val] [--out eval-results]

The embedding is the built-in engine's (engines.scope.embedding). Another reader's embedding is fitted the
same way once it is registered in EMBEDDINGS here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _medim(model: Path | None, threads: int, kind: str = "default"
           ) -> tuple[str, Callable[[Sequence[np.ndarray]], np.ndarray], Path]:
    import torch

    from engines.default_weights import DEFAULT_WEIGHTS
    from engines.pipeline import MedimPipeline
    from engines.scope.embedding import medim_embedder

    torch.set_num_threads(threads)
    folder = Path(model or DEFAULT_WEIGHTS)
    pipe = MedimPipeline.from_pretrained(folder, device="cpu")
    name, embed = medim_embedder(pipe, kind)
    return name, embed, folder


#: name -> loader(model folder, threads) -> (embedding name, embed, folder the statistics go to)
#: "medim": the engine's default (the finding reader's features when the weights ship a reader); "reader" and
#: "backbone" force one of the two, to compare them (docs/ai_limits.md).
EMBEDDINGS: dict[str, Callable[[Path | None, int], tuple[str, Callable, Path]]] = {
    "medim": _medim,
    "reader": lambda model, threads: _medim(model, threads, "reader"),
    "backbone": lambda model, threads: _medim(model, threads, "backbone"),
}


def _progress(stage: str, done: int, total: int) -> None:
    if done == total or done % 256 == 0:
        print(f"{stage}: {done}/{total}", file=sys.stderr, flush=True)


def cmd_scope_fit(args: argparse.Namespace) -> int:
    from lab.eval.scope_fit import fit_scope

    name, embed, folder = EMBEDDINGS[args.embedding](args.model, args.threads)
    stats = fit_scope(embed, name, root=args.data, reject_percent=args.reject_percent, seed=args.seed,
                      progress=_progress)
    out = Path(args.out) if args.out else folder
    path, arrays = stats.save(out)
    counts = stats.info["fitted_on"]["images"]
    rates = stats.info["fit_rates"]
    print(f"Input gate statistics for {name}, fitted on the train split in {stats.info['fit_seconds']} s\n\n"
          "| | value |\n|---|---:|\n"
          + "".join(f"| train {k} images | {v} |\n" for k, v in counts.items())
          + f"| OOD threshold (squared Mahalanobis / D) | {stats.ood_threshold:.3f} |\n"
          f"| frontal-check threshold | {stats.frontal_threshold:.3f} |\n"
          f"| frontal radiographs turned away (out of fold) | {rates['frontal_rejected_oof']:.1%} |\n"
          f"| lateral/transformed passed (out of fold) | {rates['negatives_passed_oof']:.1%} |\n\n"
          f"written: {path} and {arrays}")
    return 0


def cmd_scope_measure(args: argparse.Namespace) -> int:
    from engines.scope.stats import ScopeStatistics
    from lab.eval.scope_fit import markdown, measure_scope

    name, embed, folder = EMBEDDINGS[args.embedding](args.model, args.threads)
    stats = ScopeStatistics.load(Path(args.stats) if args.stats else folder)
    if stats.embedding != name:
        raise ValueError(f"the statistics were fitted on {stats.embedding}, the model gives {name}: refit them")
    result = measure_scope(embed, stats, split=args.split, root=args.data, seed=args.seed, progress=_progress,
                           resamples=args.resamples)
    md = markdown(result)
    print(md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"scope_{args.split}.json").write_text(json.dumps(result, indent=2, default=float))
    (out / f"scope_{args.split}.md").write_text(md + "\n")
    print(f"\nwritten: {out / f'scope_{args.split}.json'}", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("scope", help="fit or measure the input gate (out-of-scope detection)")
    actions = p.add_subparsers(dest="scope_action", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped weights)")
        sp.add_argument("--embedding", choices=sorted(EMBEDDINGS), default="medim")
        sp.add_argument("--data", type=Path, default=None, help="curated data folder (default: ../shared/data/cxr)")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--threads", type=int, default=1)

    f = actions.add_parser("fit", help="fit the statistics on the train split and write them next to the weights")
    common(f)
    f.add_argument("--reject-percent", type=float, default=2.0,
                   help="share of held-out train frontal radiographs each image check may turn away (default 2)")
    f.add_argument("--out", default=None, help="folder for scope.json/scope.npz (default: the model folder)")
    f.set_defaults(func=cmd_scope_fit)
    m = actions.add_parser("measure", help="AUROC and decisions on a split's in- and out-of-scope images")
    common(m)
    m.add_argument("--split", default="val", choices=("val", "test"))
    m.add_argument("--stats", default=None, help="folder of scope.json/scope.npz (default: the model folder)")
    m.add_argument("--out", default="eval-results")
    m.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the overall AUROC interval")
    m.set_defaults(func=cmd_scope_measure)
