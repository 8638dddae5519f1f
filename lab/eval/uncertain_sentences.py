"""The score at which the report editor marks a drafted sentence as doubtful, chosen against the image labels.

    radstation-eval uncertain-words [--model DIR] [--fit-train OOF.npz] [--split val] [--target-precision 0.5]
                                    [--limit N] [--cache DIR] [--out eval-results]

What is flagged: a sentence of a sentence draft (the unit the editor shades; in sentence mode each uncertainty
span is one sentence), scored by its uncertainty 1 - confidence, where the confidence is the study reading's
probability of the least likely state the sentence asserts (engines.sentences.decode: p for "present", 1 - p
for "absent"). The editor marks a sentence when its uncertainty is at or above the threshold.
What a flag should predict: the sentence is wrong - some finding it asserts present is not positive in the
image's labels, or some finding it asserts absent is positive (the clinical-efficacy convention of
lab.eval.clinical: present = label 1, anything else = not present; "uncertain" assertions, hedges, are not
judged). There are no reference reports paired with these images; their labels are what a sentence can be
checked against.
How it is chosen: train images are drafted through the product's path (MedimPipeline.draft_sentences: the
shipped sentence bank, decoder and "no" rule, the reader alone as in an install without a similar-case index)
from their out-of-fold reader probabilities (`--fit-train READER/oof_train.npz`: a reader that never saw the
image, as the product reads a new study). The threshold is the lowest score at which a sentence is wrong at least
`--target-precision` of the time (isotonic fit of wrong on score; choose_threshold): with 0.5 an underline means
"more likely wrong than right". Five grouped folds (whole split groups, lab.eval.tune_sentences.fold_of)
say how well that choice generalises: each fold is scored with the threshold chosen on the other four. The
split given by `--split` (val) is then drafted with the shipped reader and scored once at the chosen threshold,
with 95% bootstrap intervals over patients. Drafts are cached per image in `--cache` (JSONL), so a rerun only
drafts what is missing; delete the cache after retraining the reader or changing the bank.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lab.eval.bootstrap import cluster_bootstrap

FOLDS = 5
SETTING_KEY = "uncertain_word_threshold"  # app.settings: the editor's threshold (uncertainty = 1 - confidence)


@dataclass(frozen=True)
class Unit:
    """One drafted sentence the editor may shade: its uncertainty score and whether the labels contradict it."""

    image_id: str
    group: str
    text: str
    score: float
    wrong: bool
    contradicted: tuple[str, ...]  # the findings whose asserted state the labels contradict


def contradicted(states: Mapping[str, int], labels: Mapping[str, int]) -> tuple[str, ...]:
    """Findings a sentence asserts present (1) that the labels do not have positive, or absent (0) that they do
    (present = label 1, the clinical-efficacy convention). Uncertain (-1) assertions are hedges: never judged."""
    out = []
    for finding, state in states.items():
        positive = labels.get(finding) == 1
        if (int(state) == 1 and not positive) or (int(state) == 0 and positive):
            out.append(finding)
    return tuple(sorted(out))


def units_of(draft: Mapping[str, Any], labels: Mapping[str, int]) -> list[Unit]:
    """The sentences of one cached draft that carry a confidence (those the editor can shade)."""
    out = []
    for s in draft["sentences"]:
        if s.get("confidence") is None:
            continue
        bad = contradicted(s.get("states") or {}, labels)
        out.append(Unit(draft["image_id"], draft["group"], s["text"], round(1.0 - float(s["confidence"]), 6),
                        bool(bad), bad))
    return out


@dataclass(frozen=True)
class FlagStats:
    threshold: float | None
    units: int
    errors: int
    flagged: int
    flagged_wrong: int

    @property
    def precision(self) -> float | None:
        return self.flagged_wrong / self.flagged if self.flagged else None

    @property
    def recall(self) -> float | None:
        return self.flagged_wrong / self.errors if self.errors else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        return None if p is None or r is None or p + r == 0 else 2 * p * r / (p + r)


def flag_stats(scores: np.ndarray, wrong: np.ndarray, threshold: float | None) -> FlagStats:
    """Flags are scores >= threshold (None: nothing flagged)."""
    s, w = np.asarray(scores, np.float64), np.asarray(wrong, bool)
    flags = np.zeros(len(s), bool) if threshold is None else s >= threshold
    return FlagStats(threshold, len(s), int(w.sum()), int(flags.sum()), int((flags & w).sum()))


def choose_threshold(scores: np.ndarray, wrong: np.ndarray, target_precision: float = 0.5,
                     min_flags: int = 5) -> float | None:
    """The lowest score from which a sentence is wrong at least `target_precision` of the time *at that score*:
    the share wrong as a non-decreasing function of the score (isotonic regression of wrong on score) reaches the
    target there. So every shaded sentence is, by its score, at least that likely to be wrong (with 0.5: more
    likely wrong than right), and the shaded ones together more so. (A cumulative rule - the flags above t wrong
    half the time on average - is met far lower: the nearly-always-wrong sentences at the top carry the mean
    while it shades many sentences that are mostly right.) None when fewer than `min_flags` sentences reach it.
    Rounded down to the setting's two decimals (it then shades the same sentences or a few more)."""
    from sklearn.isotonic import IsotonicRegression

    if not 0 < target_precision <= 1:
        raise ValueError(f"target precision must be in (0, 1], got {target_precision}")
    s, w = np.asarray(scores, np.float64), np.asarray(wrong, np.float64)
    if len(s) == 0:
        return None
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(s, w).predict(s)
    reach = fitted >= target_precision - 1e-12
    if int(reach.sum()) < min_flags:
        return None
    return math.floor(float(s[reach].min()) * 100 + 1e-9) / 100  # the setting holds two decimals


def cross_validate(units: Sequence[Unit], target_precision: float, folds: int = FOLDS) -> list[dict[str, Any]]:
    """Per grouped fold: the threshold chosen on the other folds and its flags' precision/recall on this one."""
    from lab.eval.tune_sentences import fold_of

    fold = np.array([fold_of(u.group, folds) for u in units])
    scores = np.array([u.score for u in units])
    wrong = np.array([u.wrong for u in units])
    rows = []
    for f in range(folds):
        fit, held = fold != f, fold == f
        t = choose_threshold(scores[fit], wrong[fit], target_precision)
        st = flag_stats(scores[held], wrong[held], t)
        rows.append({"fold": f, "threshold": t, "units": st.units, "errors": st.errors, "flagged": st.flagged,
                     "flagged_wrong": st.flagged_wrong, "precision": st.precision, "recall": st.recall})
    return rows


def bootstrap_flags(units: Sequence[Unit], threshold: float | None, resamples: int = 1000,
                    seed: int = 0) -> dict[str, tuple[float, float] | None]:
    """95% intervals of the flags' precision and recall over resamples of whole patients (split groups)."""
    scores = np.array([u.score for u in units])
    wrong = np.array([u.wrong for u in units])
    groups = [u.group for u in units]
    flags = np.zeros(len(units), bool) if threshold is None else scores >= threshold

    def precision(idx: np.ndarray) -> float | None:
        n = int(flags[idx].sum())
        return float((flags[idx] & wrong[idx]).sum() / n) if n else None

    def recall(idx: np.ndarray) -> float | None:
        n = int(wrong[idx].sum())
        return float((flags[idx] & wrong[idx]).sum() / n) if n else None

    return {"precision": cluster_bootstrap(precision, groups, resamples=resamples, seed=seed),
            "recall": cluster_bootstrap(recall, groups, resamples=resamples, seed=seed)}


# -- drafting ---------------------------------------------------------------------------------------------
def _group(sample: Any) -> str:
    return str(sample.extra.get("split_group") or sample.patient_id)


def draft_split(pipe: Any, samples: Sequence[Any], cache: Path, reader: Mapping[str, Mapping[str, float]] | None,
                log: Any = None) -> list[dict[str, Any]]:
    """Sentence drafts of `samples` through MedimPipeline.draft_sentences, one JSON line per image in `cache`
    (appended as they finish; images already there are not drafted again). `reader`: image id -> the reader
    probabilities to draft from (out of fold); None reads each image with the shipped reader."""
    done: dict[str, dict[str, Any]] = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            try:
                d = json.loads(line)
            except json.JSONDecodeError:  # the last line of a run that was stopped mid-write: drafted again
                continue
            done[d["image_id"]] = d
    cache.parent.mkdir(parents=True, exist_ok=True)
    todo = [s for s in samples if s.image_id not in done]
    if cache.is_file() and cache.stat().st_size and not cache.read_bytes().endswith(b"\n"):
        with cache.open("a") as fh:
            fh.write("\n")  # end a cut-off last line so the next one starts clean
    with cache.open("a") as fh:
        for n, s in enumerate(todo, 1):
            res = pipe.draft_sentences([np.asarray(s.load_image())],
                                       reader=None if reader is None else dict(reader[s.image_id]))
            d = {"image_id": s.image_id, "group": _group(s), "text": res.text,
                 "sentences": [{"text": c["text"], "confidence": c["confidence"], "states": c["states"]}
                               for c in res.sentences or []]}
            fh.write(json.dumps(d) + "\n")
            fh.flush()
            done[s.image_id] = d
            if log is not None and (n % 25 == 0 or n == len(todo)):
                log(f"drafted {n}/{len(todo)} ({cache.name})")
    return [done[s.image_id] for s in samples]


def split_units(drafts: Iterable[Mapping[str, Any]], samples: Sequence[Any]) -> list[Unit]:
    labels = {s.image_id: dict(s.findings) for s in samples}
    return [u for d in drafts for u in units_of(d, labels[d["image_id"]])]


def _oof_reader(path: Path, names: Sequence[str]) -> dict[str, dict[str, float]]:
    z = np.load(path)
    have = [str(n) for n in z["names"]]
    if have != list(names):
        raise ValueError(f"{path} holds probabilities of {have}, the reading has {list(names)}")
    return {str(i): {k: float(p[j]) for j, k in enumerate(have)} for i, p in zip(z["ids"], z["probs"], strict=True)}


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _ci(c: tuple[float, float] | None) -> str:
    return "n/a" if c is None else f"{c[0]:.2f}-{c[1]:.2f}"


def cmd_uncertain_words(args: argparse.Namespace) -> int:
    import torch

    from engines.default_weights import DEFAULT_WEIGHTS
    from engines.pipeline import MedimPipeline
    from engines.reading import reading_findings
    from lab.data.cxr import load_cxr

    torch.set_num_threads(args.threads)
    model = Path(args.model or DEFAULT_WEIGHTS)
    pipe = MedimPipeline.from_pretrained(model, device="cpu")
    pipe.case_index = None  # the reader alone, as in an install without a similar-case index
    cache = Path(args.cache)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    md: list[str] = []
    threshold = args.threshold
    out: dict[str, Any] = {"target_precision": args.target_precision, "unit": "drafted sentence with a confidence",
                           "error": "asserts a state the image labels contradict (present = label 1)"}
    if args.fit_train:
        reader = _oof_reader(args.fit_train, reading_findings(pipe))
        train = [s for s in load_cxr(args.data, splits=("train",)) if s.view == "frontal" and s.image_id in reader]
        if args.limit:
            train = train[:args.limit]
        units = split_units(draft_split(pipe, train, cache / "train_oof.jsonl", reader, log), train)
        scores, wrong = np.array([u.score for u in units]), np.array([u.wrong for u in units])
        threshold = choose_threshold(scores, wrong, args.target_precision)
        cv = cross_validate(units, args.target_precision)
        st = flag_stats(scores, wrong, threshold)
        f1_best = max((flag_stats(scores, wrong, float(t)) for t in np.unique(scores)),
                      key=lambda x: x.f1 or 0.0)
        held = [r for r in cv if r["flagged"]]
        pooled_flag = sum(r["flagged"] for r in cv)
        pooled_wrong = sum(r["flagged_wrong"] for r in cv)
        pooled_err = sum(r["errors"] for r in cv)
        md += [f"Train ({len(train)} frontal images drafted from out-of-fold reader probabilities, "
               f"{args.fit_train.name}): {len(units)} sentences with a confidence, {int(wrong.sum())} contradicted "
               f"by the labels ({wrong.mean():.1%}).", "",
               f"Chosen threshold (uncertainty = 1 - confidence; lowest score at which sentences are "
               f">= {args.target_precision:.0%} wrong, isotonic fit): **{_fmt(threshold)}** - on all train: "
               f"{st.flagged} flagged, precision {_fmt(st.precision)}, recall {_fmt(st.recall)}.",
               f"For comparison, the F1-maximising threshold on train: {_fmt(f1_best.threshold)} (precision "
               f"{_fmt(f1_best.precision)}, recall {_fmt(f1_best.recall)}, F1 {_fmt(f1_best.f1)}); the old fixed "
               f"0.80: {flag_stats(scores, wrong, 0.8).flagged} flagged, precision "
               f"{_fmt(flag_stats(scores, wrong, 0.8).precision)}, recall {_fmt(flag_stats(scores, wrong, 0.8).recall)}.",
               "", "Grouped 5-fold CV (threshold chosen on four folds, scored on the fifth):", "",
               "| fold | threshold | sentences | wrong | flagged | flagged wrong | precision | recall |",
               "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in cv:
            md.append(f"| {r['fold']} | {_fmt(r['threshold'])} | {r['units']} | {r['errors']} | {r['flagged']} | "
                      f"{r['flagged_wrong']} | {_fmt(r['precision'])} | {_fmt(r['recall'])} |")
        md.append(f"| pooled held-out | | {sum(r['units'] for r in cv)} | {pooled_err} | {pooled_flag} | "
                  f"{pooled_wrong} | {_fmt(pooled_wrong / pooled_flag if pooled_flag else None)} | "
                  f"{_fmt(pooled_wrong / pooled_err if pooled_err else None)} |")
        md.append(f"\n{len(held)} of {FOLDS} held-out folds had flags. Set the default of `{SETTING_KEY}` "
                  f"(app/settings_schema.py) to {_fmt(threshold)}.")
        out.update({"threshold": threshold, "train": {"units": len(units), "errors": int(wrong.sum()),
                                                      "flagged": st.flagged, "precision": st.precision,
                                                      "recall": st.recall},
                    "cv": cv, "f1_best": {"threshold": f1_best.threshold, "precision": f1_best.precision,
                                          "recall": f1_best.recall}})
    if args.split:
        evals = [s for s in load_cxr(args.data, splits=(args.split,)) if s.view == "frontal"]
        if args.limit:
            evals = evals[:args.limit]
        units = split_units(draft_split(pipe, evals, cache / f"{args.split}.jsonl", None, log), evals)
        scores, wrong = np.array([u.score for u in units]), np.array([u.wrong for u in units])
        st = flag_stats(scores, wrong, threshold)
        ci = bootstrap_flags(units, threshold, args.resamples, args.seed)
        old = flag_stats(scores, wrong, 0.8)
        old_ci = bootstrap_flags(units, 0.8, args.resamples, args.seed)
        md += ["", f"{args.split} ({len(evals)} frontal images drafted with the shipped reader): {len(units)} "
                   f"sentences with a confidence, {st.errors} contradicted by the labels; 95% intervals over "
                   f"patients ({args.resamples} resamples)", "",
               "| threshold | flagged | flagged wrong | precision (95% CI) | recall (95% CI) |",
               "|---|---:|---:|---:|---:|",
               f"| {_fmt(threshold)} (chosen on train) | {st.flagged} | {st.flagged_wrong} | {_fmt(st.precision)} "
               f"({_ci(ci['precision'])}) | {_fmt(st.recall)} ({_ci(ci['recall'])}) |",
               f"| 0.80 (the old fixed value) | {old.flagged} | {old.flagged_wrong} | {_fmt(old.precision)} "
               f"({_ci(old_ci['precision'])}) | {_fmt(old.recall)} ({_ci(old_ci['recall'])}) |"]
        out[args.split] = {"units": st.units, "errors": st.errors, "flagged": st.flagged,
                           "flagged_wrong": st.flagged_wrong, "precision": st.precision, "recall": st.recall,
                           "precision_ci": ci["precision"], "recall_ci": ci["recall"]}
    text = "\n".join(md)
    print(text)
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "uncertain_words.md").write_text(text + "\n")
    (dest / "uncertain_words.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwritten: {dest / 'uncertain_words.md'}", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("uncertain-words", help="choose the editor's doubtful-sentence threshold on train drafts "
                                               "(out-of-fold reader) against the image labels; score it on val")
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped weights)")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--fit-train", type=Path, default=None, metavar="OOF.npz",
                   help="out-of-fold train reader probabilities (ids, probs, names), e.g. READER/oof_train.npz")
    p.add_argument("--threshold", type=float, default=None, help="score --split at this threshold (no --fit-train)")
    p.add_argument("--split", default="val", choices=("val", "test", ""), help="split scored once ('' for none)")
    p.add_argument("--target-precision", type=float, default=0.5)
    p.add_argument("--limit", type=int, default=0, help="draft only the first N images of each split (a check)")
    p.add_argument("--cache", default="eval-results/uncertain_words_cache")
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="eval-results")
    p.set_defaults(func=cmd_uncertain_words)
