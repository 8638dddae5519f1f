"""The yes/no answers' "no" rule per finding, chosen against a stated miss rate on out-of-fold train probabilities.

    radstation-eval no-rule --fit-train READER/oof_train.npz [--miss-rate 0.10] [--model DIR] [--write]

A question "Is there X?" is answered "no" when the calibrated probability is at or below the uncertain band and
the image left the finding's odds below `ratio` times its prevalence (engines.calibration.Calibration.answer);
otherwise "uncertain" (or "yes" above the band). One global ratio (2.0) let 414 of 1,391 positive val images be
answered a plain "no" (cardiomegaly 65 of 70): a "no" a radiologist cannot rely on. Here each finding gets the
largest ratio on a grid whose share of positive train images answered "no" (the miss rate) stays at or under
`--miss-rate`, from the reading's out-of-fold train probabilities through the shipped calibration (as the product
shows them); a finding that cannot reach it on the grid gets the grid's smallest ratio. Five grouped folds (whole
split groups, lab.eval.tune_sentences.fold_of) say how well the choice holds on images it was not chosen on.
`--write` stores the ratios as `no_odds_ratios` in the model folder's calibration.json; rerun after a new reader
or calibration. Drafts follow the same rule (sentence_decoding.answer_rule): a finding answered "uncertain"
rather than "no" is no longer dropped from a draft by it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

FOLDS = 5
GRID = tuple(float(x) for x in np.round(np.geomspace(0.01, 8.0, 49), 4))


def answers_no(p: np.ndarray, prevalence: float, ratio: float, band: tuple[float, float]) -> np.ndarray:
    """Bool per image: answered "no" under Calibration.answer with this ratio."""
    from engines.calibration import Calibration

    cal = Calibration(band=band, no_odds_ratios={"f": ratio})
    return np.array([cal.answer(float(v), prevalence, "f") == "no" for v in p])


def miss_rate(p: np.ndarray, y: np.ndarray, prevalence: float, ratio: float, band: tuple[float, float]) -> float:
    """Share of the positive images answered a plain "no"."""
    y = np.asarray(y, bool)
    if not y.any():
        raise ValueError("no positive image to measure a miss rate on")
    return float(answers_no(np.asarray(p)[y], prevalence, ratio, band).mean())


def choose_ratio(p: np.ndarray, y: np.ndarray, prevalence: float, band: tuple[float, float], target: float,
                 grid: Sequence[float] = GRID) -> float:
    """The largest ratio of `grid` whose miss rate is at most `target` (a larger ratio answers "no" more often, so
    the miss rate only grows with it); the smallest of the grid when none is."""
    if not 0 <= target < 1:
        raise ValueError(f"miss rate must be in [0, 1), got {target}")
    ok = [r for r in sorted(grid) if miss_rate(p, y, prevalence, r, band) <= target]
    return ok[-1] if ok else float(min(grid))


def cross_validate(p: np.ndarray, y: np.ndarray, groups: Sequence[str], prevalence: float,
                   band: tuple[float, float], target: float) -> list[dict[str, Any]]:
    """Per grouped fold: the ratio chosen on the other folds, its held-out miss rate and share answered "no"."""
    from lab.eval.tune_sentences import fold_of

    fold = np.array([fold_of(str(g), FOLDS) for g in groups])
    y = np.asarray(y, bool)
    rows = []
    for f in range(FOLDS):
        fit, held = fold != f, fold == f
        if not y[fit].any() or not y[held].any():
            rows.append({"fold": f, "ratio": None, "positives": int(y[held].sum()), "missed": None, "no": None})
            continue
        r = choose_ratio(p[fit], y[fit], prevalence, band, target)
        no = answers_no(p[held], prevalence, r, band)
        rows.append({"fold": f, "ratio": r, "positives": int(y[held].sum()), "missed": int((no & y[held]).sum()),
                     "no": int(no.sum()), "images": int(held.sum())})
    return rows


def cmd_no_rule(args: argparse.Namespace) -> int:
    import torch

    from engines.calibration import Calibration
    from engines.default_weights import DEFAULT_WEIGHTS
    from engines.pipeline import MedimPipeline
    from engines.reading import effective_calibration, reading_findings
    from lab.data.cxr import load_cxr
    from lab.training.finding_targets import finding_targets

    torch.set_num_threads(args.threads)
    model = Path(args.model or DEFAULT_WEIGHTS)
    pipe = MedimPipeline.from_pretrained(model, device="cpu")
    names = list(reading_findings(pipe))
    z = np.load(args.fit_train)
    if [str(n) for n in z["names"]] != names:
        raise ValueError(f"{args.fit_train} holds probabilities of {[str(n) for n in z['names']]}, the reading "
                         f"has {names}")
    row = {str(i): n for n, i in enumerate(z["ids"])}
    train = [s for s in load_cxr(args.data, splits=("train",)) if s.view == "frontal" and s.image_id in row]
    if not train:
        raise ValueError(f"{args.fit_train} has no frontal train image of this data set")
    raw = z["probs"][[row[s.image_id] for s in train]].astype(np.float64)
    truth = finding_targets(train, names).numpy() > 0
    groups = [str(s.extra.get("split_group") or s.patient_id) for s in train]
    shipped = Calibration.load(model)
    cal, _ = effective_calibration(pipe, shipped)
    prior = getattr(pipe, "finding_prior", {}) or {}
    md = [f"\"No\" rule per finding, chosen on {len(train)} frontal train images (out-of-fold reading "
          f"{Path(args.fit_train).name}, through the shipped calibration) so that at most {args.miss_rate:.0%} of "
          f"positive images are answered a plain \"no\"; held-out = each of {FOLDS} grouped folds scored with the "
          f"ratio chosen on the other four (global ratio before: {shipped.no_odds_ratio:g}).", "",
          "| finding | train positives | ratio | train miss rate before -> after | held-out missed / positives | "
          "held-out fold ratios | train answered no before -> after |", "|---|---:|---:|---:|---:|---|---:|"]
    ratios: dict[str, float] = {}
    for j, f in enumerate(names):
        p = np.array([cal.apply({f: float(v)})[f] for v in raw[:, j]])
        y = truth[:, j]
        prev = cal.prior(f, prior.get(f))
        if prev is None or y.sum() < args.min_positives:
            md.append(f"| {f} | {int(y.sum())} | (global) | too few positives or no prevalence | | | |")
            continue
        r = choose_ratio(p, y, prev, cal.band, args.miss_rate)
        ratios[f] = r
        cv = cross_validate(p, y, groups, prev, cal.band, args.miss_rate)
        missed = sum(c["missed"] or 0 for c in cv)
        pos = sum(c["positives"] for c in cv if c["missed"] is not None)
        before, after = (miss_rate(p, y, prev, shipped.no_ratio(None), cal.band),
                         miss_rate(p, y, prev, r, cal.band))
        no_before = int(answers_no(p, prev, shipped.no_ratio(None), cal.band).sum())
        no_after = int(answers_no(p, prev, r, cal.band).sum())
        folds = ", ".join("-" if c["ratio"] is None else f"{c['ratio']:g}" for c in cv)
        md.append(f"| {f} | {int(y.sum())} | {r:g} | {before:.1%} -> {after:.1%} | {missed}/{pos} "
                  f"({missed / max(pos, 1):.1%}) | {folds} | {no_before} -> {no_after} of {len(y)} |")
    text = "\n".join(md)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "no_rule.md").write_text(text + "\n")
    if args.write:
        shipped.no_odds_ratios = ratios
        shipped.info["no_rule"] = {"miss_rate": args.miss_rate, "chosen_on": f"train, out of fold "
                                   f"({Path(args.fit_train).name}), {len(train)} frontal images"}
        path = shipped.save(model)
        print(f"written: {path}", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("no-rule", help="choose each finding's 'no' rule on out-of-fold train probabilities so that "
                                       "at most --miss-rate of positives are answered 'no'")
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped weights)")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--fit-train", type=Path, required=True, metavar="OOF.npz")
    p.add_argument("--miss-rate", type=float, default=0.10)
    p.add_argument("--min-positives", type=int, default=10)
    p.add_argument("--write", action="store_true", help="store the ratios in the model folder's calibration.json")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="eval-results")
    p.set_defaults(func=cmd_no_rule)
