"""Closed-question VQA accuracy of an engine backend on the rule-derived questions of a held-out split,
next to the training-majority answer per question (the bar it must clear).

    python -m lab.eval.vqa_backends --engine diffusion --split val --max-images 200 --threads 2

Questions come from lab.data.qa.derive_qa on the curated set with composed reports (as radstation-eval);
scores from lab.eval.vqa.vqa_scores, so the numbers are comparable with `radstation-eval baselines`.

Where the backend scores yes/no (its answer's extra["scores"]), each presence question also gets the AUROC of
the engine's p(yes) against the truth: whether the image moves the answer at all, apart from where the
yes/no threshold falls (an engine that only learnt each question's prior scores about 0.5 there).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path


def evaluate(backend, queries, train, *, max_images: int | None, seed: int, steps: int | None,
             budget_s: float | None = None, log=sys.stderr) -> dict:
    """Answer every closed question of up to `max_images` images (a seeded random subset); with `budget_s`,
    stop after the image that crosses the budget (both systems are scored on the same answered subset)."""
    from lab.data.qa import derive_qa
    from lab.eval.auroc import auroc
    from lab.eval.vqa import vqa_scores

    counts: dict[str, Counter[str]] = {}
    for s in train:
        for q in derive_qa(s):
            if q.kind == "closed":
                counts.setdefault(q.question, Counter())[q.answer] += 1
    majority = {q: c.most_common(1)[0][0] for q, c in counts.items()}
    overall = Counter(a for c in counts.values() for a in c.elements()).most_common(1)
    fallback = overall[0][0] if overall else "no"
    chosen = sorted(queries, key=lambda s: s.image_id)
    if max_images is not None and len(chosen) > max_images:
        chosen = sorted(random.Random(seed).sample(chosen, max_images), key=lambda s: s.image_id)
    refs, preds, base, qtypes, sources, groups = [], [], [], [], [], []
    p_yes: dict[str, list[tuple[float, bool]]] = {}
    t0 = time.perf_counter()
    for i, s in enumerate(chosen, 1):
        closed = [q for q in derive_qa(s) if q.kind == "closed"]
        if not closed:
            continue
        image = s.load_image()
        for q in closed:
            out = backend.answer([image], q.question, steps=steps, seed=seed)
            preds.append(out.text)
            refs.append(q.answer)
            base.append(majority.get(q.question, fallback))
            qtypes.append(q.qtype)
            sources.append(s.source)
            groups.append(str(s.extra.get("split_group") or s.patient_id))
            sc = (getattr(out, "extra", None) or {}).get("scores") or {}
            if q.answer in ("yes", "no") and {"yes", "no"} <= set(sc):
                py = 0.5 * (1.0 + math.tanh((float(sc["yes"]) - float(sc["no"])) / 2))  # sigmoid, no overflow
                p_yes.setdefault(q.question, []).append((py, q.answer == "yes"))
        if i % 5 == 0 or i == len(chosen):
            print(f"{i}/{len(chosen)} images, {len(refs)} questions, {time.perf_counter() - t0:.0f} s", file=log)
        if budget_s is not None and time.perf_counter() - t0 > budget_s:
            print(f"time budget reached after {i} of {len(chosen)} images", file=log)
            chosen = chosen[:i]
            break
    kinds = ["closed"] * len(refs)
    result = {"engine": vqa_scores(preds, refs, kinds), "majority": vqa_scores(base, refs, kinds),
              "n_images": len(chosen), "n_questions": len(refs), "seconds": round(time.perf_counter() - t0, 1),
              "by_qtype": {}}
    for qt in sorted(set(qtypes)):
        idx = [k for k, t in enumerate(qtypes) if t == qt]
        result["by_qtype"][qt] = {
            "n": len(idx),
            "engine": vqa_scores([preds[k] for k in idx], [refs[k] for k in idx], ["closed"] * len(idx))["closed_accuracy"],
            "majority": vqa_scores([base[k] for k in idx], [refs[k] for k in idx], ["closed"] * len(idx))["closed_accuracy"],
        }
    result["by_source"] = accuracy_by_source(preds, base, refs, sources, groups)
    result["yes_auroc"] = {q: {"n": len(v), "positives": sum(y for _, y in v),
                               "auroc": auroc([y for _, y in v], [p for p, _ in v])}
                           for q, v in sorted(p_yes.items())}
    return result


def accuracy_by_source(preds: list[str], base: list[str], refs: list[str], sources: list[str], groups: list[str],
                       resamples: int = 500) -> dict:
    """Closed accuracy of the engine and of the majority answer overall, within NIH and per source, with
    patient-level bootstrap intervals of the engine's accuracy (issue 28: a reader that recognises the collection
    beats the majority answer only where the collection predicts the answer)."""
    import numpy as np

    from lab.eval.bootstrap import cluster_bootstrap
    from lab.eval.by_source import NIH_SOURCES

    norm = lambda a: str(a).strip().lower()  # noqa: E731
    right = np.array([norm(p) == norm(r) for p, r in zip(preds, refs, strict=True)], float)
    base_right = np.array([norm(b) == norm(r) for b, r in zip(base, refs, strict=True)], float)
    src, grp = np.asarray(sources), np.asarray(groups)
    subsets = [("overall", np.ones(len(src), bool)), ("NIH only", np.isin(src, NIH_SOURCES))]
    subsets += [(s_, src == s_) for s_ in sorted(set(sources))]
    out = {}
    for name, m in subsets:
        if not m.any():
            continue
        r = right[m]
        ci = cluster_bootstrap(lambda i, r=r: float(r[i].mean()), grp[m], resamples=resamples)
        out[name] = {"n": int(m.sum()), "engine": float(r.mean()), "engine_ci": ci,
                     "majority": float(base_right[m].mean())}
    return out


def markdown(result: dict, title: str) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"{title}", "", "| system | closed accuracy | questions |", "|---|---:|---:|",
             f"| engine | {fmt(result['engine']['closed_accuracy'])} | {result['n_questions']} |",
             f"| majority answer (train) | {fmt(result['majority']['closed_accuracy'])} | {result['n_questions']} |",
             "", "| question type | n | engine | majority |", "|---|---:|---:|---:|"]
    lines += [f"| {qt} | {r['n']} | {fmt(r['engine'])} | {fmt(r['majority'])} |" for qt, r in result["by_qtype"].items()]
    if result.get("by_source"):
        lines += ["", "| subset | questions | engine (95% CI) | majority |", "|---|---:|---:|---:|"]
        for name, r in result["by_source"].items():
            ci = "" if r["engine_ci"] is None else f" ({r['engine_ci'][0]:.3f}-{r['engine_ci'][1]:.3f})"
            lines.append(f"| {name} | {r['n']} | {r['engine']:.3f}{ci} | {r['majority']:.3f} |")
    if result.get("yes_auroc"):
        lines += ["", "| question | n | yes | AUROC of p(yes) |", "|---|---:|---:|---:|"]
        lines += [f"| {q} | {r['n']} | {r['positives']} | {fmt(r['auroc'])} |" for q, r in result["yes_auroc"].items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.eval.vqa_backends", description=__doc__.split("\n")[0])
    p.add_argument("--engine", default="diffusion", help="registered backend name (default: diffusion)")
    p.add_argument("--model", default="", help="model folder (default: the backend's default weights)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--split", default="val", choices=("val", "test"))
    p.add_argument("--data", type=Path, default=None, help="curated data folder (default: ../shared/data/cxr)")
    p.add_argument("--max-images", type=int, default=200, help="random subset of the split (0: all)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--budget-s", type=float, default=None, help="stop after this many seconds of answering")
    p.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = p.parse_args(argv)

    import torch

    from engines.backends import BackendError, create_backend
    from lab.data.cxr import load_cxr
    from lab.data.paired import SentenceBank, pair_reports

    torch.set_num_threads(args.threads)
    config = {"device": args.device, **({"path": args.model} if args.model else {})}
    try:
        backend = create_backend(args.engine, **config)
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ds = load_cxr(args.data, splits=("train", args.split))
    bank = SentenceBank.from_iu(None if args.data is None else Path(args.data) / "text_only" / "iu_xray_reports.jsonl")
    train = pair_reports(ds.by_split("train"), bank, seed=args.seed)
    queries = pair_reports(ds.by_split(args.split), bank, seed=args.seed)
    result = evaluate(backend, queries, train, max_images=args.max_images or None, seed=args.seed, steps=args.steps,
                      budget_s=args.budget_s)
    desc = backend.describe()
    result["backend"] = {k: desc.get(k) for k in ("name", "device", "model", "weights_hash")}
    title = (f"Closed VQA on the {args.split} split: {result['n_images']} images (seed {args.seed}), engine "
             f"'{args.engine}' ({desc.get('model')}, weights {str(desc.get('weights_hash'))[:12]}), steps "
             f"{args.steps or 'model default'}, {args.device}, {args.threads} threads, {result['seconds']} s")
    print(markdown(result, title))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
