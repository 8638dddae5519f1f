"""`radstation-eval calibration` and `radstation-eval questions`: how far the engine's reading can be trusted.

    radstation-eval calibration [--model DIR] [--split val] [--method platt] [--fit] [--out eval-results]
        ECE and reliability diagrams of the reading (finding reader or head) as read, as shown (after the shipped
        calibration, which is not applied on top of an already calibrated reader) and refit on the split (out of fold);
        with --fit, writes DIR/calibration.json fitted on the whole split (engines.calibration).
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


def cmd_calibration(args: argparse.Namespace) -> int:
    from engines.calibration import Calibration
    from engines.reading import effective_calibration
    from lab.eval.calibration import ece, fit_calibration, out_of_fold, reliability_figure

    pipe, samples, probs, labels = _head(args)
    source = str(getattr(pipe, "reading_source", "head"))
    # what the product shows: the reading through the calibration the engine applies to it (none on top of a
    # reader that is calibrated already: engines.reading.effective_calibration)
    shipped, pre_calibrated = effective_calibration(pipe, Calibration.load(args.model or pipe.path))
    product = {k: np.array([shipped.apply({k: float(v)})[k] for v in probs[k]]) for k in probs}
    out = Path(args.out)
    rows, pooled_raw, pooled_cal, pooled_prod, pooled_y = [], [], [], [], []
    for k in probs:
        y = labels[k]
        pos = int(y.sum())
        raw_e = ece(probs[k], y)
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
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    md = [f"Calibration of the engine's reading ({read_as}) on {len(samples)} {args.split} frontal radiographs; "
          f"'as shown' is what answers and the AI panel use (the shipped calibration applied only where the "
          f"reading is not calibrated already); '{args.method} refit' is fitted on {args.split} itself, ECE out of "
          f"5 folds (findings with < {args.min_positives} positives or negatives stay as read)", "",
          f"| finding | positives | ECE as read | ECE as shown | ECE {args.method} refit |", "|---|---:|---:|---:|---:|"]
    md += [f"| {k} | {pos} | {raw:.3f} | {prod:.3f} | {fmt(cal)} |" for k, pos, raw, prod, cal in rows]
    md.append(f"| all findings pooled | {int(y_all.sum())} | {ece(p_raw, y_all):.3f} | {ece(p_prod, y_all):.3f} | "
              f"{ece(p_cal, y_all):.3f} |")
    text = "\n".join(md)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"calibration_{args.split}.md").write_text(text + f"\n\n![reliability]({fig.name})\n")
    print(f"\nwritten: {out / f'calibration_{args.split}.md'} and {fig}", file=sys.stderr)
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
        prior = (getattr(pipe, "finding_prior", {}) or {}).get(f)
        answers = np.array([calibration.answer(float(v), prior) for v in p])
        y = labels[f].astype(bool)
        d = per.setdefault(r["question"], {"finding": f, "n": len(y), "uncertain": 0, "correct": 0, "decided": 0})
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
          "| finding | questions | answers | uncertain | yes/no accuracy | majority answer's accuracy |",
          "|---|---:|---:|---:|---:|---:|"]
    by_f: dict[str, list[int]] = {}
    for d in per.values():
        acc = by_f.setdefault(d["finding"], [0, 0, 0, 0])
        acc[0] += 1
        acc[1] += d["n"]
        acc[2] += d["uncertain"]
        acc[3] += d["correct"]
    for f, (nq, n, unc, cor) in sorted(by_f.items()):
        dec = n - unc
        prev = float(labels[f].mean())
        md.append(f"| {f} | {nq} | {n} | {unc} | {'n/a' if not dec else f'{cor / dec:.1%}'} | "
                  f"{max(prev, 1 - prev):.1%} |")
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
    c.add_argument("--fit", action="store_true", help="write calibration.json next to the weights")
    c.set_defaults(func=cmd_calibration)
    q = sub.add_parser("questions", help="the written question list: refusals and in-scope answer accuracy")
    common(q)
    q.set_defaults(func=cmd_questions)
