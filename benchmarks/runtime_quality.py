"""Do two sets of drafts of one split score the same? Paired bootstrap of the val metrics between two runtimes'
drafts (e.g. runtime onnx against onnx-int8, issue 27), from the drafts files `radstation-eval drafting` writes.

    radstation-eval drafting --split val --modes sentences free --threads 1 --runtime onnx --out A
    radstation-eval drafting --split val --modes sentences free --threads 1 --runtime onnx-int8 --out B
    python benchmarks/runtime_quality.py --a onnx=A/drafts_sentences_val_onnx.jsonl \\
        --b onnx-int8=B/drafts_sentences_val_onnx-int8.jsonl [--split val] [--reps 1000] [--nlg-reps 200]

Prints how many texts are identical, then lab.eval.drafting's table (CE-F1 micro/macro, hallucination on normal
studies, inconsistent reports, near-real sentence share, median perplexity; bootstrap 95% intervals) with the
paired interval of B - A (the same resampled studies; the near-real share's on a line of its own), then BLEU-4, ROUGE-L and CIDEr-D (simple tokenizer) with
their paired B - A intervals. References: composed from real IU sentences (lab.data.paired, seed 0), as
`radstation-eval drafting` composes them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]  # this checkout's code


def _named(text: str) -> tuple[str, Path]:
    name, _, path = text.partition("=")
    if not path:
        raise argparse.ArgumentTypeError(f"NAME=FILE, got {text!r}")
    return name, Path(path)


def _nlg(gen: list[str], ref: list[str], idx: np.ndarray) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    from lab.eval.nlg import simple_tokenize

    res = {str(k): [simple_tokenize(gen[i])] for k, i in enumerate(idx)}
    gts = {str(k): [simple_tokenize(ref[i])] for k, i in enumerate(idx)}
    with contextlib.redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        rouge, _ = Rouge().compute_score(gts, res)
        cider, _ = Cider().compute_score(gts, res)
    return {"BLEU-4": float(bleu[3]), "ROUGE-L": float(rouge), "CIDEr": float(cider)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", type=_named, required=True, help="NAME=FILE: the reference drafts (JSONL)")
    p.add_argument("--b", type=_named, required=True, help="NAME=FILE: the drafts compared with them")
    p.add_argument("--split", default="val", choices=("val", "test"))
    p.add_argument("--seed", type=int, default=0, help="seed of the composed reports")
    p.add_argument("--reps", type=int, default=1000)
    p.add_argument("--nlg-reps", type=int, default=200)
    a = p.parse_args(argv)

    from lab.data.cxr import load_cxr
    from lab.data.iu import load_iu_reports
    from lab.data.paired import SentenceBank, pair_reports
    from lab.eval.baselines import eval_text
    from lab.eval.drafting import markdown, score_systems
    from lab.eval.fluency import SentenceCorpus
    from lab.eval.jsonl import read_reports

    queries = pair_reports(load_cxr(None, splits=(a.split,)).by_split(a.split), SentenceBank.from_iu(None),
                           seed=a.seed)
    (na, fa), (nb, fb) = a.a, a.b
    da, db = read_reports(fa), read_reports(fb)
    ids = [q.image_id for q in queries if q.image_id in da and q.image_id in db]
    if not ids:
        raise SystemExit("the two drafts files share no images of this split")
    refs_by = {q.image_id: eval_text(q) for q in queries}
    refs = [refs_by[i] for i in ids]
    ta, tb = [da[i] for i in ids], [db[i] for i in ids]
    same = sum(x == y for x, y in zip(ta, tb, strict=True))
    print(f"{len(ids)} {a.split} images in both; text identical: {same}/{len(ids)}\n")
    corpus = SentenceCorpus.from_reports(r.text for r in load_iu_reports(None) if r.text.strip())
    scores = score_systems({na: ta, nb: tb}, refs, corpus, na, a.reps)
    print(markdown(scores, None, a.split, [f"{a.reps} resamples of the {len(ids)} studies", f"A: {fa}",
                                           f"B: {fb}"], na))
    paired = scores[nb]["minus_" + na]
    print(f"\nEvery paired difference {nb} - {na} (95% interval): "
          + ", ".join(f"{k} [{lo:+.3f}, {hi:+.3f}]" for k, (lo, hi) in paired.items()))
    rng = np.random.default_rng(0)
    n = len(ids)
    point = {k: _nlg(t, refs, np.arange(n)) for k, t in ((na, ta), (nb, tb))}
    diffs: dict[str, list[float]] = {}
    for _ in range(a.nlg_reps):
        idx = rng.integers(0, n, n)
        ra, rb = _nlg(ta, refs, idx), _nlg(tb, refs, idx)
        for k in ra:
            diffs.setdefault(k, []).append(rb[k] - ra[k])
    print(f"\nText overlap with the references (simple tokenizer; paired {nb} - {na}, 95% interval of "
          f"{a.nlg_reps} resamples):\n")
    print(f"| metric | {na} | {nb} | paired difference |\n|---|---:|---:|---:|")
    for k, d in diffs.items():
        lo, hi = np.percentile(d, [2.5, 97.5])
        print(f"| {k} | {point[na][k]:.4f} | {point[nb][k]:.4f} | [{lo:+.4f}, {hi:+.4f}] |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
