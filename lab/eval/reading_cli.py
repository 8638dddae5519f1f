"""`radstation-eval calibration` and `radstation-eval questions`: how far the engine's reading can be trusted.

    radstation-eval calibration [--model DIR] [--split val] [--method platt] [--fit-train OOF.npz] [--fit]
                                [--out eval-results]
        ECE (per finding with a 95% bootstrap interval over patients) and reliability diagrams (pooled and per
        finding) of the reading (finding reader or head) as read, as shown (after the shipped calibration, applied
        only where it was fitted on the same reading source) and refit on the split (out of fold, for reference).
        --fit-train first writes DIR/calibration.json chosen and fitted on TRAIN: per finding, identity /
        temperature / Platt / isotonic by grouped 5-fold CV (held-out log loss) on the reading's out-of-fold train
        probabilities in OOF.npz (ids, probs, names: `radstation-train reader` writes READER/oof_train.npz).
        --fit writes DIR/calibration.json fitted on the evaluated split itself (its metrics are then no longer
        independent of the fit; not for shipping).
    radstation-eval questions [--model DIR] [--split val] [--out eval-results]
        The written question list (lab/eval/data/scope_questions.json) through the engine's question
        scope: every out-of-scope question must be refused; in-scope questions are answered on each image of
        the split from the calibrated reading and scored against its labels (yes/no accuracy, share uncertain).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

QUESTIONS = Path(__file__).resolve().parent / "data" / "scope_questions.json"


def _head(args: argparse.Namespace) -> tuple[Any, list, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(pipeline, samples, raw probabilities per finding, labels per finding) on the split."""
    import torch

    from engines.default_weights import DEFAULT_WEIGHTS
    from engines.pipeline import MedimPipeline
    from lab.data.cxr import load_cxr
    from lab.training.finding_targets import finding_targets

    torch.set_num_threads(args.threads)
    pipe = MedimPipeline.from_pretrained(args.model or DEFAULT_WEIGHTS, device="cpu")
    from engines.reading import reading_findings

    names = reading_findings(pipe)
    if not names:
        raise ValueError("these weights have no finding head or reader")
    samples = [s for s in load_cxr(args.data, splits=(args.split,)) if s.view == "frontal"]
    probs: list[dict[str, float]] = []
    for i in range(0, len(samples), 32):
        probs += pipe.finding_probabilities([s.load_image() for s in samples[i:i + 32]])
        print(f"head: {min(i + 32, len(samples))}/{len(samples)}", file=sys.stderr, flush=True)
    truth = finding_targets(samples, names).numpy()
    return (pipe, samples, {k: np.array([p[k] for p in probs]) for k in names},
            {k: truth[:, j] for j, k in enumerate(names)})


def _groups(samples: list) -> np.ndarray:
    return np.array([str(s.extra.get("split_group") or s.patient_id) for s in samples])


def fit_on_train(args: argparse.Namespace, pipe: Any) -> Path:
    """calibration.json chosen and fitted on the out-of-fold train probabilities of `args.fit_train` (frontal
    train images, labels as finding_targets reads them), saved next to the weights."""
    from engines.reading import reading_findings
    from lab.data.cxr import load_cxr
    from lab.eval.calibration import select_calibration
    from lab.training.finding_targets import finding_targets

    z = np.load(args.fit_train)
    names = [str(n) for n in z["names"]]
    want = list(reading_findings(pipe))
    if names != want:
        raise ValueError(f"{args.fit_train} holds probabilities of {names}, the reading has {want}")
    row = {str(i): n for n, i in enumerate(z["ids"])}
    train = [s for s in load_cxr(args.data, splits=("train",)) if s.view == "frontal" and s.image_id in row]
    if not train:
        raise ValueError(f"{args.fit_train} has no frontal train image of this data set")
    probs = z["probs"][[row[s.image_id] for s in train]].astype(np.float64)
    truth = finding_targets(train, names).numpy()
    old = _calibration_or_defaults(args.model or pipe.path)
    cal, choices = select_calibration({k: probs[:, j] for j, k in enumerate(names)},
                                      {k: truth[:, j] for j, k in enumerate(names)}, _groups(train),
                                      seed=args.seed, min_positives=args.min_positives, band=old.band,
                                      no_odds_ratio=old.no_odds_ratio,
                                      info={"source": str(getattr(pipe, "reading_source", "head")),
                                            "fitted_on": {"split": "train", "images": len(train), "view": "frontal",
                                                          "probabilities": f"out of fold ({Path(args.fit_train).name})",
                                                          "selection": "per finding, grouped 5-fold CV by patient, "
                                                                       "held-out log loss"}})
    cal.no_odds_ratios = dict(old.no_odds_ratios)  # kept; chosen on the old calibration: rerun no-rule
    path = cal.save(args.model or pipe.path)
    if old.no_odds_ratios:
        print("the per-finding 'no' rules were kept from the previous calibration; choose them again on the new "
              "one: radstation-eval no-rule --fit-train OOF.npz", file=sys.stderr)
    print("Per finding, chosen on train by grouped CV (held-out log loss / ECE of each method):", file=sys.stderr)
    for k, c in choices.items():
        scores = " ".join(f"{m} {d['log_loss']:.4f}/{d['ece']:.3f}" for m, d in c.cv.items()) or "too few positives"
        print(f"  {k}: {c.method} ({c.positives} positive of {c.n}; {scores})", file=sys.stderr)
    print(f"written: {path}", file=sys.stderr)
    return path


def _calibration_or_defaults(folder: Any) -> Any:
    """The shipped calibration (its band and "no" rule carry over), the defaults when it is missing or broken."""
    from engines.calibration import Calibration

    try:
        return Calibration.load(folder)
    except ValueError:
        return Calibration.identity()


def cmd_calibration(args: argparse.Namespace) -> int:
    from engines.calibration import Calibration
    from engines.reading import effective_calibration
    from lab.eval.calibration import (
        bootstrap_ece,
        ece,
        fit_calibration,
        judge_ece,
        out_of_fold,
        reliability_figure,
        reliability_grid,
    )

    pipe, samples, probs, labels = _head(args)
    if args.fit_train:
        fit_on_train(args, pipe)
    source = str(getattr(pipe, "reading_source", "head"))
    # what the product shows: the reading through the calibration the engine applies to it (none on top of a
    # reader that is calibrated already: engines.reading.effective_calibration)
    shipped, pre_calibrated = effective_calibration(pipe, Calibration.load(args.model or pipe.path))
    product = {k: np.array([shipped.apply({k: float(v)})[k] for v in probs[k]]) for k in probs}
    out = Path(args.out)
    rows, pooled_raw, pooled_cal, pooled_prod, pooled_y = [], [], [], [], []
    groups = _groups(samples)
    intervals, panels = {}, {}
    for k in probs:
        y = labels[k]
        pos = int(y.sum())
        raw_e = ece(probs[k], y)
        intervals[k] = bootstrap_ece(product[k], y, groups, args.resamples, args.seed)
        panels[k] = {"as read": (probs[k], y)} | ({} if np.allclose(product[k], probs[k]) else
                                                 {"as shown": (product[k], y)})
        if min(pos, len(y) - pos) >= args.min_positives:
            cal = out_of_fold(probs[k], y, args.method, seed=args.seed)
            cal_e: float | None = ece(cal, y)
            pooled_cal.append(cal)
        else:
            cal, cal_e = probs[k], None
            pooled_cal.append(probs[k])
        pooled_raw.append(probs[k])
        pooled_prod.append(product[k])
        pooled_y.append(y)
        rows.append((k, pos, raw_e, ece(product[k], y), cal_e))
    p_raw, p_cal, y_all = np.concatenate(pooled_raw), np.concatenate(pooled_cal), np.concatenate(pooled_y)
    p_prod = np.concatenate(pooled_prod)
    read_as = f"finding {source}" + (" (calibrated in the reader)" if pre_calibrated else "")
    curves = {f"{read_as}, as read": (p_raw, y_all)}
    if not np.allclose(p_prod, p_raw):
        curves["as shown (shipped calibration)"] = (p_prod, y_all)
    curves[f"{args.method} refit on {args.split}, out of fold"] = (p_cal, y_all)
    fig = reliability_figure(curves, out / f"reliability_{args.split}.png",
                             title=f"Finding {source}, {len(samples)} {args.split} frontal radiographs x "
                                   f"{len(probs)} findings")
    grid = reliability_grid(panels, out / f"reliability_{args.split}_findings.png",
                            title=f"Per finding, {len(samples)} {args.split} frontal radiographs")
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    methods = {k: c.method for k, c in shipped.findings.items()}
    fitted_on = shipped.info.get("fitted_on", {}) if shipped.findings else {}
    md = [f"Calibration of the engine's reading ({read_as}) on {len(samples)} {args.split} frontal radiographs; "
          f"'as shown' is what answers and the AI panel use (the shipped calibration"
          f"{', fitted on ' + str(fitted_on.get('split')) if fitted_on else ''}, applied only where it was fitted on "
          f"the same reading source), with its 95% bootstrap interval over patients ({args.resamples} resamples); "
          f"'judged' compares that interval with the 0.05 target; '{args.method} refit' is fitted on {args.split} "
          f"itself, ECE out of 5 folds, for reference only (findings with < {args.min_positives} positives or "
          "negatives stay as read)", "",
          f"| finding | positives | ECE as read | ECE as shown (95% CI) | judged | shipped method | "
          f"ECE {args.method} refit |", "|---|---:|---:|---:|---|---|---:|"]
    for k, pos, raw, prod, cal in rows:
        e, lo, hi = intervals[k]
        md.append(f"| {k} | {pos} | {raw:.3f} | {prod:.3f} ({lo:.3f}-{hi:.3f}) | {judge_ece(e, lo, hi)} | "
                  f"{methods.get(k, 'none')} | {fmt(cal)} |")
    pooled_e = bootstrap_ece(p_prod, y_all, np.tile(groups, len(probs)), args.resamples, args.seed)
    md.append(f"| all findings pooled | {int(y_all.sum())} | {ece(p_raw, y_all):.3f} | {pooled_e[0]:.3f} "
              f"({pooled_e[1]:.3f}-{pooled_e[2]:.3f}) | {judge_ece(*pooled_e)} | | {ece(p_cal, y_all):.3f} |")
    above = [k for k, *_ in rows if ece(product[k], labels[k]) > 0.05]
    md.append(f"\nFindings with ECE as shown above 0.05: {len(above)} of {len(rows)}"
              + (f" ({', '.join(above)})" if above else ""))
    text = "\n".join(md)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"calibration_{args.split}.md").write_text(text + f"\n\n![reliability]({fig.name})\n\n"
                                                      f"![reliability per finding]({grid.name})\n")
    print(f"\nwritten: {out / f'calibration_{args.split}.md'}, {fig} and {grid}", file=sys.stderr)
    if args.fit:
        cal = fit_calibration(probs, labels, args.method, min_positives=args.min_positives,
                              info={"source": str(getattr(pipe, "reading_source", "head")),
                                    "fitted_on": {"split": args.split, "images": len(samples), "view": "frontal",
                                                  "method": args.method},
                                    "ece_out_of_fold": {k: c for k, _p, _r, _s, c in rows if c is not None}})
        path = cal.save(args.model or pipe.path)
        print(f"written: {path} (fitted on all {len(samples)} {args.split} images; {args.split} metrics of the "
              "calibrated probabilities are no longer independent of the fit)", file=sys.stderr)
    return 0


def cmd_questions(args: argparse.Namespace) -> int:
    from engines.calibration import Calibration
    from engines.qa.scope import question_scope

    rows = json.loads(QUESTIONS.read_text())["questions"]
    pipe, samples, probs, labels = _head(args)
    from engines.reading import effective_calibration, reading_findings

    findings = reading_findings(pipe)
    calibration, pre = effective_calibration(pipe, Calibration.load(args.model or pipe.path))
    refused_out = [r for r in rows if not r["in_scope"] and not question_scope(r["question"], findings).in_scope]
    n_out = sum(not r["in_scope"] for r in rows)
    accepted_in = []
    per: dict[str, dict[str, int]] = {}
    for r in (r for r in rows if r["in_scope"]):
        s = question_scope(r["question"], findings)
        if not s.in_scope:
            continue
        accepted_in.append(r)
        f = s.finding
        p = np.array([calibration.apply({f: float(v)})[f] for v in probs[f]])
        prior = calibration.prior(f, (getattr(pipe, "finding_prior", {}) or {}).get(f))
        answers = np.array([calibration.answer(float(v), prior, f) for v in p])
        y = labels[f].astype(bool)
        d = per.setdefault(r["question"], {"finding": f, "n": len(y), "uncertain": 0, "correct": 0, "decided": 0,
                                           "positives": 0, "missed": 0})
        d["positives"] += int(y.sum())
        d["missed"] += int((answers[y] == "no").sum())  # a positive image answered a plain "no"
        decided = answers != "uncertain"
        d["uncertain"] += int((~decided).sum())
        d["decided"] += int(decided.sum())
        d["correct"] += int(((answers == "yes") == y)[decided].sum())
    n_in = sum(r["in_scope"] for r in rows)
    majority = float(np.mean([max(labels[d["finding"]].mean(), 1 - labels[d["finding"]].mean())
                              for d in per.values()])) if per else 0.0
    decided = sum(d["decided"] for d in per.values())
    correct = sum(d["correct"] for d in per.values())
    uncertain = sum(d["uncertain"] for d in per.values())
    md = [f"Question scope on {len(rows)} written questions ({n_in} in scope, {n_out} out of scope); in-scope "
          f"questions answered on {len(samples)} {args.split} frontal radiographs from the "
          f"{'calibrated' if calibration.findings or pre else 'uncalibrated'} "
          f"{getattr(pipe, 'reading_source', 'head')} reading (uncertain band "
          f"{calibration.band[0]:.2f}-{calibration.band[1]:.2f})", "",
          f"- out-of-scope questions refused: {len(refused_out)}/{n_out} ({len(refused_out) / max(n_out, 1):.0%})",
          f"- in-scope questions accepted: {len(accepted_in)}/{n_in}",
          f"- in-scope answers: {decided} yes/no, {correct} correct ({correct / max(decided, 1):.1%}); "
          f"{uncertain} uncertain ({uncertain / max(decided + uncertain, 1):.1%} of answers); always giving each "
          f"finding's majority answer: {majority:.1%}", "",
          "| finding | questions | answers | uncertain | yes/no accuracy | majority answer's accuracy | "
          "positives answered no |", "|---|---:|---:|---:|---:|---:|---:|"]
    by_f: dict[str, list[int]] = {}
    for d in per.values():
        acc = by_f.setdefault(d["finding"], [0, 0, 0, 0, 0, 0])
        acc[0] += 1
        acc[1] += d["n"]
        acc[2] += d["uncertain"]
        acc[3] += d["correct"]
        acc[4] += d["positives"]
        acc[5] += d["missed"]
    for f, (nq, n, unc, cor, pos, missed) in sorted(by_f.items()):
        dec = n - unc
        prev = float(labels[f].mean())
        md.append(f"| {f} | {nq} | {n} | {unc} | {'n/a' if not dec else f'{cor / dec:.1%}'} | "
                  f"{max(prev, 1 - prev):.1%} | {missed}/{pos} |")
    missed_all = sum(v[5] for v in by_f.values())
    pos_all = sum(v[4] for v in by_f.values())
    md.insert(5, f"- positive images answered a plain \"no\": {missed_all}/{pos_all} "
                 f"({missed_all / max(pos_all, 1):.1%}; the rest 'yes' or 'uncertain')")
    not_refused = [r["question"] for r in rows if not r["in_scope"] and r not in refused_out]
    if not_refused:
        md.append("\nOut-of-scope questions NOT refused: " + "; ".join(not_refused))
    text = "\n".join(md)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"questions_{args.split}.md").write_text(text + "\n")
    return 0 if len(refused_out) == n_out else 1


def register(sub: Any) -> None:
    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped weights)")
        sp.add_argument("--data", type=Path, default=None)
        sp.add_argument("--split", default="val", choices=("train", "val", "test"))
        sp.add_argument("--threads", type=int, default=1)
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--out", default="eval-results")

    c = sub.add_parser("calibration", help="ECE and reliability diagrams of the finding head; --fit writes the "
                                           "runtime calibration")
    common(c)
    c.add_argument("--method", choices=("platt", "temperature", "isotonic"), default="platt")
    c.add_argument("--min-positives", type=int, default=5)
    c.add_argument("--fit", action="store_true", help="write calibration.json fitted on the evaluated split itself "
                                                      "(not for shipping: the split then no longer checks it)")
    c.add_argument("--fit-train", type=Path, default=None, metavar="OOF.npz",
                   help="first write calibration.json chosen per finding by grouped CV on these out-of-fold train "
                        "probabilities (ids, probs, names), e.g. READER/oof_train.npz")
    c.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the ECE intervals")
    c.set_defaults(func=cmd_calibration)
    q = sub.add_parser("questions", help="the written question list: refusals and in-scope answer accuracy")
    common(q)
    q.set_defaults(func=cmd_questions)
