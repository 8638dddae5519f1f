"""Choose the study-reading settings of sentence drafting by grouped cross-validation on train folds.

    python -m lab.eval.tune_sentences [--model DIR] [--folds 5] [--features F.npz] [--out DIR] [--write]

What a sentence draft states is decided by its study reading (engines.sentences.study): the finding reader's
probabilities, optionally mixed with the labels of the K most similar cases (case_weight 1: the K cases' vote),
against thresholds at the training prevalence times `scale` (`normal_scale` for No Finding), less what the
engine's yes/no answer denies (the answer rule the shipped drafts apply; answer_denies). A sentence draft states
exactly the findings its reading finds present (each slot must agree with the reading), so the clinical scores
of a setting follow from the reading alone; they are computed here for every setting of a grid on each of 5
folds of the train images (grouped by the split's patient clusters; the similar cases of a fold's images come
from the other folds only). The bar is the issue's: beat nearest-neighbour retrieval on all three of CE-F1
micro, CE-F1 macro and hallucination on normal studies, over all sources and within NIH (`--subset both`, the
default: within one source the collection shortcut retrieval takes on the COVID figures carries nothing).
Retrieval is scored on the same folds the same way (each image gets the composed report of its closest 32x32
image in the other folds, as radstation-eval's baseline), and the objective of a setting is its smallest margin
over retrieval among the measures and subsets, averaged over the folds (ties: the mean of micro, macro and
1 - hallucination). The val split is never read. The setting with the best mean over folds is chosen; the nested
estimate (each fold scored with the setting chosen on the others) says how well that choice generalises. The
best reader-only setting (case_weight 0) is written too, as `alone_scale`/`alone_normal_scale`: the thresholds a
draft uses when fewer than K similar cases can be asked. Use `--features` from lab.eval.reader_oof (out-of-fold
reader probabilities): the shipped reader was trained on these images and is too sure of them.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engines.labeler.findings import FINDINGS, PATHOLOGIES
from engines.labeler.label import label_report
from lab.eval.auroc import auroc
from lab.eval.draft_bootstrap import clinical_point, label_matrix

GRID = {"scale": (0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5), "normal_scale": (0.75, 1.0, 1.5, 2.0, 3.0),
        "case_weight": (0.0, 0.25, 0.5, 0.75, 1.0), "cases": (1, 3, 5, 10, 20, 50),
        "case_embedding": ("image-tokens", "pixels32")}


def features(pipe, samples: Sequence, cache: Path | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(reader probabilities (n, F), embeddings (n, D), reader finding names), cached by image ids."""
    ids = [s.image_id for s in samples]
    if cache is not None and cache.is_file():
        z = np.load(cache)
        pos = {str(i): k for k, i in enumerate(z["ids"])}
        if all(i in pos for i in ids):
            rows = [pos[i] for i in ids]
            return z["probs"][rows], z["emb"][rows], [str(x) for x in z["names"]]
    probs, embs = [], []
    names: list[str] = []
    for k, s in enumerate(samples):
        img = np.asarray(s.load_image())
        p = pipe.finding_probabilities([img])[0]
        names = list(p)
        probs.append([p[f] for f in names])
        embs.append(pipe.embed([img])[0])
        if (k + 1) % 250 == 0:
            print(f"features {k + 1}/{len(samples)}", file=sys.stderr, flush=True)
    out = np.array(probs, np.float32), np.stack(embs).astype(np.float32), names
    if cache is not None:
        np.savez(cache, ids=np.array(ids), probs=out[0], emb=out[1], names=np.array(names))
    return out


def fold_of(group: str, folds: int) -> int:
    return int(hashlib.sha1(group.encode()).hexdigest(), 16) % folds


def answer_denies(probs: np.ndarray, names: list[str], prior: dict[str, float], cal) -> np.ndarray:
    """(n, 14) bool: the findings the engine's yes/no answer calls absent: `cal` (MedimPipeline.answer_calibration)
    applied to the reader's own probability and answered against its prevalence, as
    MedimPipeline._drop_what_answers_deny does. The shipped drafts never state those present
    (sentence_decoding.answer_rule), whatever similar cases say."""
    out = np.zeros((probs.shape[0], len(FINDINGS)), bool)
    for j, f in enumerate(names):
        prev = cal.prior(f, prior.get(f))
        out[:, FINDINGS.index(f)] = [cal.answer(cal.apply({f: float(p)})[f], prev) == "no" for p in probs[:, j]]
    return out


def simulate(probs: np.ndarray, names: list[str], prior: dict[str, float], shares: np.ndarray | None,
             scale: float | np.ndarray, normal_scale: float, case_weight: float,
             denied: np.ndarray | None = None) -> np.ndarray:
    """(n, 14) bool: the findings a sentence draft states present under this reading (engines.sentences.study
    .read_study, vectorised: the same rule), less those the yes/no answer denies (`denied`, answer_denies).
    `scale` may be one per finding of FINDINGS (lab.eval.reading_variants asks whether that would help)."""
    from engines.sentences.study import NORMAL

    n = probs.shape[0]
    out = np.zeros((n, len(FINDINGS)), bool)
    p = np.zeros((n, len(FINDINGS)))
    known = np.zeros(len(FINDINGS), bool)
    for j, f in enumerate(names):
        p[:, FINDINGS.index(f)] = probs[:, j]
        known[FINDINGS.index(f)] = True
    if shares is not None and case_weight > 0:
        p = np.where(known, (1 - case_weight) * p + case_weight * shares, shares)
        known = np.ones(len(FINDINGS), bool)
    scales = np.broadcast_to(np.asarray(scale, float), (len(FINDINGS),))
    thr = np.array([min(max(prior.get(f, 0.5) * (normal_scale if f == NORMAL else scales[j]), 0.01), 0.95)
                    for j, f in enumerate(FINDINGS)])
    normal = p[:, 0] > thr[0] if known[0] else np.zeros(n, bool)
    for j, f in enumerate(FINDINGS):
        if f == NORMAL or not known[j]:
            continue
        out[:, j] = (p[:, j] > thr[j]) & ~normal
    if denied is not None:
        out[:, 1:] &= ~denied[:, 1:]
    pathologies = [FINDINGS.index(f) for f in PATHOLOGIES]
    out[:, 0] = ~out[:, pathologies].any(1)  # the labeler reads No Finding in a draft that states no pathology
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.eval.tune_sentences", description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--features", type=Path, default=None, help="cache of reader probabilities and embeddings")
    ap.add_argument("--out", type=Path, default=Path("eval-results"))
    ap.add_argument("--write", action="store_true", help="write the chosen settings into the model's config.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--case-embeddings", default="image-tokens,pixels32",
                    help="case embeddings to consider; leave out image-tokens when the reader that embeds was trained "
                         "on these images (its features of its own training images encode their labels, so their "
                         "neighbours' labels look more telling here than on unseen images)")
    ap.add_argument("--subset", choices=("both", "all", "nih"), default="both",
                    help="images each fold is scored on: both (the default, issue 23: the margin over retrieval must "
                         "hold over all sources and within NIH, where the collection shortcut that retrieval exploits "
                         "on the COVID figures carries nothing), all, or nih")
    ap.add_argument("--no-answer-rule", action="store_true",
                    help="score the readings without the yes/no answer's veto (the shipped drafts apply it)")
    ap.add_argument("--case-weights", default="",
                    help="restrict the grid's case weights (comma-separated), e.g. to see the reader's own margin")
    args = ap.parse_args(argv)
    if args.case_weights:
        GRID["case_weight"] = tuple(float(w) for w in args.case_weights.split(","))
    allowed = [e.strip() for e in args.case_embeddings.split(",") if e.strip()]
    if not allowed or set(allowed) - set(GRID["case_embedding"]):
        ap.error(f"--case-embeddings must name some of {GRID['case_embedding']}")
    import torch

    from engines.default_weights import DEFAULT_WEIGHTS
    from engines.pipeline import MedimPipeline
    from lab.data.cxr import load_cxr
    from lab.data.paired import SentenceBank, pair_reports
    from lab.eval.baselines import eval_text

    torch.set_num_threads(max(args.threads, 1))
    model = args.model or DEFAULT_WEIGHTS
    pipe = MedimPipeline.from_pretrained(model, device="cpu")
    ds = load_cxr(args.data, splits=("train",))
    bank = SentenceBank.from_iu(None if args.data is None else args.data / "text_only" / "iu_xray_reports.jsonl")
    train = pair_reports(ds.by_split("train"), bank, seed=0)
    ref = label_matrix([label_report(eval_text(s)).findings for s in train])
    probs, emb, names = features(pipe, train, args.features)
    groups = [str(s.extra.get("split_group") or s.patient_id) for s in train]
    fold = np.array([fold_of(g, args.folds) for g in groups])
    kmax = max(GRID["cases"])
    # neighbours of each image among the other folds' images, best first
    nbrs = np.zeros((len(train), kmax), int)
    for f in range(args.folds):
        q, rest = np.where(fold == f)[0], np.where(fold != f)[0]
        sims = emb[q] @ emb[rest].T
        nbrs[q] = rest[np.argsort(-sims, axis=1)[:, :kmax]]
    from lab.eval.baselines import embed_samples

    pix_cache = None if args.features is None else args.features.with_suffix(".pixels32.npy")
    if pix_cache is not None and pix_cache.is_file() and np.load(pix_cache).shape[0] == len(train):
        pix = np.load(pix_cache)
    else:
        pix = embed_samples(train)
        if pix_cache is not None:
            np.save(pix_cache, pix)
    pnbrs = np.zeros((len(train), kmax), int)
    for f in range(args.folds):
        q, rest = np.where(fold == f)[0], np.where(fold != f)[0]
        pnbrs[q] = rest[np.argsort(-(pix[q] @ pix[rest].T), axis=1)[:, :kmax]]
    shares = {(e, k): ref[nb[:, :k]].mean(1) for e, nb in (("image-tokens", nbrs), ("pixels32", pnbrs))
              for k in GRID["cases"]}
    nn_pred = np.zeros_like(ref)
    for f in range(args.folds):
        q, rest = np.where(fold == f)[0], np.where(fold != f)[0]
        nn_pred[q] = ref[rest[np.argmax(pix[q] @ pix[rest].T, axis=1)]]
    nih = np.array([s.source.startswith("nih_") for s in train])
    subsets = {"all": [np.ones(len(train), bool)], "nih": [nih], "both": [np.ones(len(train), bool), nih]}[args.subset]
    scored = np.any(subsets, axis=0)
    nn_fold = np.array([[[clinical_point(nn_pred, ref, np.where((fold == f) & m)[0])[k]
                          for k in ("micro", "macro", "halluc")] for m in subsets]
                        for f in range(args.folds)])  # (folds, subsets, 3)
    denied = None
    if not args.no_answer_rule and pipe.decode_settings.answer_rule:
        cal = pipe.answer_calibration()
        denied = answer_denies(probs, names, pipe.finding_prior, cal)
    settings = [dict(zip(GRID, v, strict=True)) for v in itertools.product(*GRID.values())]
    settings = [s for s in settings if s["case_embedding"] in allowed and not (
        s["case_weight"] == 0 and (s["cases"] != GRID["cases"][0] or s["case_embedding"] != allowed[0]))]
    per_fold = np.zeros((len(settings), args.folds, 4))
    per_subset = np.zeros((len(settings), args.folds, len(subsets), 3))
    for i, s in enumerate(settings):
        pred = simulate(probs, names, pipe.finding_prior, shares[(s["case_embedding"], s["cases"])], s["scale"],
                        s["normal_scale"], s["case_weight"], denied)
        for f in range(args.folds):
            ds = [clinical_point(pred, ref, np.where((fold == f) & m)[0]) for m in subsets]
            per_subset[i, f] = [[d["micro"], d["macro"], d["halluc"]] for d in ds]
            margin = min(min(d["micro"] - nn_fold[f, a, 0], d["macro"] - nn_fold[f, a, 1], nn_fold[f, a, 2] - d["halluc"])
                         for a, d in enumerate(ds))
            d = ds[0]
            per_fold[i, f] = (d["micro"], d["macro"], d["halluc"],
                              margin + 1e-3 * (d["micro"] + d["macro"] + 1 - d["halluc"]) / 3)
    mean = per_fold.mean(1)
    sub_mean = per_subset.mean(1)  # (settings, subsets, 3)
    def rank(i: int) -> tuple[float, float]:  # equal objectives: the thresholds nearest the prevalence
        return round(float(mean[i, 3]), 9), -abs(np.log(settings[i]["scale"])) - abs(np.log(settings[i]["normal_scale"]))

    best = max(range(len(settings)), key=rank)
    alone = max((i for i, s in enumerate(settings) if s["case_weight"] == 0), key=rank)  # no similar cases answer
    chosen = {**settings[best], "alone_scale": settings[alone]["scale"],
              "alone_normal_scale": settings[alone]["normal_scale"]}
    nested, nested_sub = [], []
    for f in range(args.folds):
        others = [g for g in range(args.folds) if g != f]
        pick = int(np.argmax(per_fold[:, others, 3].mean(1)))
        nested.append(per_fold[pick, f])
        nested_sub.append(per_subset[pick, f])
    nested, nested_sub = np.array(nested), np.array(nested_sub).mean(0)
    head = [auroc(ref[:, FINDINGS.index(n)], probs[:, j]) for j, n in enumerate(names)]
    nn_mean = nn_fold.mean(0)  # (subsets, 3)
    names_sub = {"all": ["all"], "nih": ["nih"], "both": ["all", "nih"]}[args.subset]
    keys = ("micro", "macro", "halluc")

    def by_subset(a: np.ndarray) -> dict:
        return {n: dict(zip(keys, map(float, a[k]), strict=True)) for k, n in enumerate(names_sub)}

    report = {"folds": args.folds, "n": len(train), "subset": args.subset, "n_scored": int(scored.sum()),
              "answer_rule": denied is not None, "settings_tried": len(settings),
              "grid": GRID, "chosen": chosen, "objective": float(mean[best, 3]),
              "alone_cv": {"objective": float(mean[alone, 3]), **by_subset(sub_mean[alone])},
              "retrieval_cv": by_subset(nn_mean), "chosen_cv": by_subset(sub_mean[best]),
              "nested_cv": by_subset(nested_sub), "nested_objective": float(nested[:, 3].mean()),
              "reader_train_auroc": {n: (None if a is None else float(a)) for n, a in zip(names, head, strict=True)},
              "top": [{**settings[i], "objective": float(mean[i, 3]), **by_subset(sub_mean[i])}
                      for i in np.argsort(-mean[:, 3])[:10]]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tune_sentences.json").write_text(json.dumps(report, indent=2))
    print(f"{len(settings)} settings x {args.folds} grouped folds of {len(train)} train images, scored on "
          f"{int(scored.sum())} ({args.subset}; answer rule {'on' if denied is not None else 'off'})")
    cols = " | ".join(f"{n} {k}" for n in names_sub for k in ("micro", "macro", "halluc."))
    print(f"| scale | normal_scale | case_weight | cases | case embedding | {cols} | min margin over retrieval |")
    print("|---:|---:|---:|---:|---|" + "---:|" * (3 * len(names_sub) + 1))

    def cells(d: dict) -> str:
        return " | ".join(f"{d[n][k]:.3f}" for n in names_sub for k in keys)

    for r in report["top"]:
        print(f"| {r['scale']} | {r['normal_scale']} | {r['case_weight']} | {r['cases']} | {r['case_embedding']} | "
              f"{cells(r)} | {r['objective']:+.3f} |")
    print(f"| retrieval (32x32 nearest neighbour) | | | | | {cells(report['retrieval_cv'])} | |")
    print(f"| nested CV (each fold scored with the setting chosen on the others) | | | | | "
          f"{cells(report['nested_cv'])} | {report['nested_objective']:+.3f} |")
    print(f"| reader alone (no similar cases; scale {settings[alone]['scale']}, normal_scale "
          f"{settings[alone]['normal_scale']}) | | | | | {cells(report['alone_cv'])} | {mean[alone, 3]:+.3f} |")
    print(f"\nchosen: {chosen}")
    print("reader AUROC on these images: "
          + ", ".join(f"{n} {a:.2f}" for n, a in zip(names, head, strict=True) if a is not None))
    if args.write:
        cfg_path = Path(model) / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg.setdefault("sentence_decoding", {}).update(chosen)
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
        print(f"written to {cfg_path} (sentence_decoding)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
