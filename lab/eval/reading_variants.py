"""Would the drafts state findings better with per-finding thresholds or a stacked reading? Nested CV on train.

    python -m lab.eval.reading_variants [--model DIR] [--oof READER/oof_train.npz] [--out FILE.md]

A sentence draft states exactly the findings its study reading finds present (engines.sentences.study): one global
`scale` times each finding's prevalence, one `normal_scale` for No Finding, the reader's probabilities alone or the
vote of the 10 most similar 32x32 cases (lab.eval.tune_sentences chose these). Macro CE-F1 is the measure that still
ties with nearest-neighbour retrieval on val (issue 23), and a macro F1 is what per-class thresholds classically
raise, so two variants are judged here against the global rule, every one chosen and scored by nested grouped CV on
the train split's out-of-fold reader probabilities (`reader/oof_train.npz`, written by `radstation-train reader`):
- **per-finding scales**: from the global choice, each finding's scale is moved along the grid while the inner
  folds' objective rises (two sweeps);
- **stacked reading**: per finding, a logistic regression on the reader's logit, its No Finding logit and the
  share of the 5/10/20/50 most similar other-fold cases with the finding, fitted on the inner folds (each inner
  fold's stacked probabilities from a fit on the remaining ones), then global thresholds chosen on them.
The objective is tune_sentences': the smallest margin over retrieval among micro, macro and hallucination, over all
sources and within NIH (where the collection shortcut of image similarity carries nothing). Each outer fold is
scored with what the other four chose; val is never read. Prints a markdown table and per-finding AUROC of the
stacked reading against the reader's, overall and within NIH.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from engines.labeler.findings import FINDINGS
from lab.eval.draft_bootstrap import clinical_point

SCALES = (0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0)
NORMAL_SCALES = (0.75, 1.0, 1.5, 2.0, 3.0)
SHARE_KS = (5, 10, 20, 50)
MEASURES = ("micro", "macro", "halluc")

Reading = Callable[[np.ndarray, float], np.ndarray]  # (scales per finding, normal_scale) -> (n, 14) stated present


def fold_scores(pred: np.ndarray, ref: np.ndarray, fold: np.ndarray, nih: np.ndarray) -> np.ndarray:
    """(folds, 6): micro, macro, hallucination over all sources, then the same within NIH, per fold."""
    everyone = np.ones(len(ref), bool)
    return np.array([[clinical_point(pred, ref, np.flatnonzero((fold == f) & m))[k]
                      for m in (everyone, nih) for k in MEASURES] for f in range(int(fold.max()) + 1)])


def margins(scores: np.ndarray, retrieval: np.ndarray) -> np.ndarray:
    """Per fold, the smallest margin over retrieval (higher micro/macro, lower hallucination), plus a 1e-3
    tie-break on the mean of the all-source measures, as lab.eval.tune_sentences ranks settings."""
    d = scores - retrieval
    worst = np.min(np.stack([d[:, 0], d[:, 1], -d[:, 2], d[:, 3], d[:, 4], -d[:, 5]]), axis=0)
    return worst + 1e-3 * (scores[:, 0] + scores[:, 1] + 1 - scores[:, 2]) / 3


def choose_global(reading: Reading, ref, fold, nih, retrieval, inner: Sequence[int]) -> tuple[float, float, float]:
    """(scale, normal_scale, objective) on the inner folds' mean margin."""
    best = (SCALES[0], NORMAL_SCALES[0], -np.inf)
    for s, ns in itertools.product(SCALES, NORMAL_SCALES):
        v = float(margins(fold_scores(reading(np.full(len(FINDINGS), s), ns), ref, fold, nih)[inner],
                          retrieval[inner]).mean())
        if v > best[2] + 1e-12:
            best = (s, ns, v)
    return best


def choose_per_finding(reading: Reading, ref, fold, nih, retrieval, inner: Sequence[int],
                       sweeps: int = 2) -> tuple[np.ndarray, float]:
    """(scale per finding, normal_scale): the global choice, then each finding's scale moved while the inner
    folds' mean margin rises."""
    s0, ns, cur = choose_global(reading, ref, fold, nih, retrieval, inner)
    scales = np.full(len(FINDINGS), s0)
    for _ in range(sweeps):
        for j in range(1, len(FINDINGS)):
            if not ref[:, j].any():
                continue
            for g in SCALES:
                trial = scales.copy()
                trial[j] = g
                v = float(margins(fold_scores(reading(trial, ns), ref, fold, nih)[inner], retrieval[inner]).mean())
                if v > cur + 1e-12:
                    cur, scales = v, trial
    return scales, ns


def stack_features(reader: np.ndarray, known: np.ndarray, shares: dict[int, np.ndarray]) -> list[np.ndarray]:
    """Per finding j of FINDINGS, the (n, k) inputs of its stacked reading: reader logit of j (0 where the reader
    does not read j), reader No Finding logit, the share of similar cases with j at each K."""
    p = np.clip(reader, 1e-4, 1 - 1e-4)
    lg = np.log(p / (1 - p)) * known
    return [np.column_stack([lg[:, j], lg[:, 0], *(shares[k][:, j] for k in SHARE_KS)]) for j in range(len(FINDINGS))]


def stacked(features: list[np.ndarray], ref: np.ndarray, fit: np.ndarray, read: np.ndarray) -> np.ndarray:
    """(len(read), 14) stacked probabilities of the images `read`, from logistic fits on the images `fit`."""
    from sklearn.linear_model import LogisticRegression

    out = np.zeros((len(read), len(FINDINGS)))
    for j, x in enumerate(features):
        y = ref[fit, j]
        if y.sum() < 3 or y.all():
            out[:, j] = y.mean() if len(y) else 0.0
            continue
        out[:, j] = LogisticRegression(C=1.0, max_iter=2000).fit(x[fit], y).predict_proba(x[read])[:, 1]
    return out


def neighbour_shares(pix: np.ndarray, ref: np.ndarray, fold: np.ndarray, ks: Sequence[int]) -> dict[int, np.ndarray]:
    """Share of the K most similar images of the other folds (cosine on unit-norm embeddings) with each finding."""
    kmax = max(ks)
    nbrs = np.zeros((len(ref), kmax), int)
    for f in np.unique(fold):
        q, rest = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
        nbrs[q] = rest[np.argsort(-(pix[q] @ pix[rest].T), axis=1)[:, :kmax]]
    return {k: ref[nbrs[:, :k]].mean(1) for k in ks}


def retrieval_prediction(pix: np.ndarray, ref: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Each image gets the labels of its closest other-fold image (radstation-eval's nearest-neighbour baseline)."""
    return ref[[int(v) for v in neighbour_index(pix, fold)]]


def neighbour_index(pix: np.ndarray, fold: np.ndarray) -> np.ndarray:
    out = np.zeros(len(pix), int)
    for f in np.unique(fold):
        q, rest = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
        out[q] = rest[np.argmax(pix[q] @ pix[rest].T, axis=1)]
    return out


def nested(variant: str, reading_of: Callable[[np.ndarray | None], Reading], ref, fold, nih, retrieval,
           stack_inputs: list[np.ndarray] | None = None) -> np.ndarray:
    """(folds, 6) outer-fold scores of a variant ('global', 'per-finding', 'stacked'), each outer fold scored
    with what the other folds chose. `reading_of(Q)` makes a Reading from stacked probabilities Q (None: the
    variant's own probabilities)."""
    folds = int(fold.max()) + 1
    out = np.zeros((folds, 6))
    for h in range(folds):
        inner = [g for g in range(folds) if g != h]
        if variant == "stacked":
            q = np.zeros((len(ref), len(FINDINGS)))
            for g in inner:  # inner folds read by fits on the other inner folds
                fit = np.flatnonzero((fold != g) & (fold != h))
                q[fold == g] = stacked(stack_inputs, ref, fit, np.flatnonzero(fold == g))
            q[fold == h] = stacked(stack_inputs, ref, np.flatnonzero(fold != h), np.flatnonzero(fold == h))
            reading = reading_of(q)
            s, ns, _ = choose_global(reading, ref, fold, nih, retrieval, inner)
            scales = np.full(len(FINDINGS), s)
        elif variant == "per-finding":
            reading = reading_of(None)
            scales, ns = choose_per_finding(reading, ref, fold, nih, retrieval, inner)
        else:
            reading = reading_of(None)
            s, ns, _ = choose_global(reading, ref, fold, nih, retrieval, inner)
            scales = np.full(len(FINDINGS), s)
        out[h] = fold_scores(reading(scales, ns), ref, fold, nih)[h]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.eval.reading_variants", description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--oof", type=Path, default=None, help="out-of-fold reader probabilities (default MODEL/reader/"
                                                             "oof_train.npz)")
    ap.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    args = ap.parse_args(argv)
    from engines.default_weights import DEFAULT_WEIGHTS
    from engines.labeler.label import label_report
    from engines.pipeline import MedimPipeline
    from lab.data.cxr import load_cxr
    from lab.data.paired import SentenceBank, pair_reports
    from lab.eval.auroc import auroc
    from lab.eval.baselines import embed_samples, eval_text
    from lab.eval.draft_bootstrap import label_matrix
    from lab.eval.tune_sentences import answer_denies, fold_of, simulate

    model = args.model or DEFAULT_WEIGHTS
    oof_path = args.oof or Path(model) / "reader" / "oof_train.npz"
    if not oof_path.is_file():
        ap.error(f"{oof_path}: no out-of-fold reader probabilities (radstation-train reader writes them)")
    pipe = MedimPipeline.from_pretrained(model, device="cpu")
    train = pair_reports(load_cxr(args.data, splits=("train",)).by_split("train"),
                         SentenceBank.from_iu(None if args.data is None else
                                              args.data / "text_only" / "iu_xray_reports.jsonl"), seed=0)
    oof = np.load(oof_path)
    pos = {str(i): k for k, i in enumerate(oof["ids"])}
    missing = [s.image_id for s in train if s.image_id not in pos]
    if missing:
        ap.error(f"{oof_path} lacks {len(missing)} train images (e.g. {missing[0]}): refit the reader")
    rows = [pos[s.image_id] for s in train]
    probs, names = oof["probs"][rows].astype(float), [str(n) for n in oof["names"]]
    ref = label_matrix([label_report(eval_text(s)).findings for s in train])
    fold = np.array([fold_of(str(s.extra.get("split_group") or s.patient_id), 5) for s in train])
    nih = np.array([s.source.startswith("nih_") for s in train])
    print(f"embedding {len(train)} train images (32x32)", file=sys.stderr, flush=True)
    pix = embed_samples(train)
    retrieval = fold_scores(retrieval_prediction(pix, ref, fold), ref, fold, nih)
    shares = neighbour_shares(pix, ref, fold, sorted({*SHARE_KS, 10}))
    denied = answer_denies(probs, names, pipe.finding_prior, pipe.answer_calibration())
    prior = pipe.finding_prior
    reader = np.zeros((len(train), len(FINDINGS)))
    known = np.zeros(len(FINDINGS), bool)
    for j, n in enumerate(names):
        reader[:, FINDINGS.index(n)], known[FINDINGS.index(n)] = probs[:, j], True

    def own(case_weight: float) -> Callable[[np.ndarray | None], Reading]:
        return lambda q: (lambda sc, ns: simulate(probs, names, prior, shares[10], sc, ns, case_weight, denied))

    def of_stack(q: np.ndarray | None) -> Reading:
        return lambda sc, ns: simulate(q, list(FINDINGS), prior, None, sc, ns, 0.0, denied)

    inputs = stack_features(reader, known, shares)
    rows_out = [("retrieval (32x32 nearest neighbour)", retrieval)]
    for label, variant, reading_of in (
            ("reader alone, global scales (shipped rule)", "global", own(0.0)),
            ("reader alone, per-finding scales", "per-finding", own(0.0)),
            ("vote of 10 similar cases, global scales (shipped rule)", "global", own(1.0)),
            ("vote of 10 similar cases, per-finding scales", "per-finding", own(1.0)),
            ("stacked reading (reader + similar-case shares), global scales", "stacked", of_stack)):
        print(f"nested CV: {label}", file=sys.stderr, flush=True)
        rows_out.append((label, nested(variant, reading_of, ref, fold, nih, retrieval, inputs)))
    q_oof = np.zeros((len(train), len(FINDINGS)))
    for f in np.unique(fold):
        q_oof[fold == f] = stacked(inputs, ref, np.flatnonzero(fold != f), np.flatnonzero(fold == f))
    lines = [f"Nested grouped 5-fold CV on {len(train)} train images ({int(nih.sum())} NIH), out-of-fold reader "
             f"probabilities from {oof_path.name}; mean over outer folds.", "",
             "| variant | all micro | all macro | all halluc. | NIH micro | NIH macro | NIH halluc. | "
             "min margin over retrieval |", "|---|" + "---:|" * 7]
    for label, sc in rows_out:
        m = "" if sc is retrieval else f"{margins(sc, retrieval).mean():+.3f}"
        lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in sc.mean(0)) + f" | {m} |")
    lines += ["", "Per-finding AUROC (>= 10 positives), out of fold: reader / stacked reading, all sources and NIH:", "",
              "| finding | positives | reader | stacked | NIH positives | NIH reader | NIH stacked |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for j, f in enumerate(FINDINGS):
        if ref[:, j].sum() < 10:
            continue
        cells = []
        for m in (np.ones(len(train), bool), nih):
            r, pos_n = ref[m, j], int(ref[m, j].sum())
            a = auroc(r, reader[m, j]) if known[j] and 0 < pos_n < m.sum() else None
            b = auroc(r, q_oof[m, j]) if 0 < pos_n < m.sum() else None
            cells += [str(pos_n), "-" if a is None else f"{a:.3f}", "-" if b is None else f"{b:.3f}"]
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
