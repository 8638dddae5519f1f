"""Explanation latency: maps for a report, the full study explanation, and the cached re-display.

    python benchmarks/explain.py [--model resources/weights/medim-small] [--threads 2] [--repeats 3]
                                 [--k 4] [--device cpu] [--size 2048]

Prints a markdown table (step, device, threads, image size, sentences, median s, min s). "cache hit"
is what toggling an overlay or reopening a study costs: an LRU/npz lookup plus upsampling one map to
the image's pixels.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_MODEL = ROOT / "resources" / "weights" / "medim-small"
REPORT = ("FINDINGS: The heart size is normal. There is a small right pleural effusion. No pneumothorax. "
          "IMPRESSION: Small right pleural effusion.")


def _time(fn, repeats: int) -> tuple[float, float, object]:
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=2048, help="image side in pixels (maps are upsampled to it)")
    a = ap.parse_args(argv)
    import torch

    from engines.pipeline import MedimPipeline
    from explain.cache import ExplanationCache, explanation_key
    from explain.report import explain_report
    from explain.study import explain_study

    torch.set_num_threads(a.threads)
    if not a.model.exists():
        print(f"error: no model at {a.model}", file=sys.stderr)
        return 2
    pipe = MedimPipeline.from_pretrained(a.model, a.device)
    rng = np.random.default_rng(0)
    img = (rng.random((a.size, int(a.size * 0.8))) * 4095).astype(np.uint16)
    rows = []
    for name, kw in (("report maps (attention)", {"methods": ("attention",)}),
                     ("report maps (attention + IG)", {})):
        med, lo, exp = _time(lambda kw=kw: explain_report(pipe, img, REPORT, **kw), a.repeats)
        rows.append((name, med, lo, len(exp.sentences)))
    med, lo, study = _time(lambda: explain_study(pipe, [img], REPORT, k_drafts=a.k), 1)
    rows.append((f"study (maps + {a.k} drafts + image uncertainty)", med, lo, len(study.sentences)))
    with tempfile.TemporaryDirectory() as d:
        cache = ExplanationCache(d)
        key = explanation_key("bench", REPORT, pipe.weights_hash)
        cache.put(key, study)

        def hit_memory():
            return cache.get(key).sentences[1].attribution_map

        def hit_disk():
            return ExplanationCache(d).get(key).sentences[1].attribution_map

        for name, fn in (("cache hit, memory (+ upsample one map)", hit_memory),
                         ("cache hit, disk npz (+ upsample one map)", hit_disk)):
            med, lo, _ = _time(fn, max(a.repeats, 5))
            rows.append((name, med, lo, len(study.sentences)))
    print(f"model {a.model} ({pipe.model_config.name}, grid {pipe.grid}), device {pipe.device}, "
          f"threads {a.threads}, image {img.shape[0]}x{img.shape[1]}")
    print("| step | sentences | median s | min s |\n|---|---|---|---|")
    for name, med, lo, n in rows:
        print(f"| {name} | {n} | {med:.3f} | {lo:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
