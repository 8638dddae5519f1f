"""Input-gate cost: what the gate adds to every job (header rules, embedding, the two scores), per image.

    python benchmarks/scope.py [--model resources/weights/medim-small] [--threads 1] [--repeats 5]
                               [--size 2048] [--device cpu]

Prints a markdown table (step, device, threads, image size, median ms, min ms). The embedding includes the
VQ encoding of the image, which a draft does anyway.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_MODEL = ROOT / "resources" / "weights" / "medim-small"
HEADER = {"Modality": "DX", "BodyPartExamined": "CHEST", "ViewPosition": "PA", "ImageType": ["ORIGINAL", "PRIMARY"],
          "PhotometricInterpretation": "MONOCHROME2"}


def _time(fn, repeats: int) -> tuple[float, float]:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1000, min(ts) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=2048, help="image side in pixels")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    import torch

    from engines.pipeline import MedimPipeline
    from engines.scope.embedding import medim_embedder
    from engines.scope.gate import InputGate
    from engines.scope.header import check_header
    from engines.scope.stats import ScopeStatistics

    torch.set_num_threads(a.threads)
    pipe = MedimPipeline.from_pretrained(a.model, a.device)
    name, embed = medim_embedder(pipe)
    stats = ScopeStatistics.load(a.model)
    gate = InputGate(embed, stats, name)
    img = (np.random.default_rng(0).random((a.size, int(a.size * 0.8))) * 4095).astype(np.uint16)
    emb = embed([img])
    rows = [("header rules", *_time(lambda: check_header(HEADER), a.repeats)),
            ("embedding (VQ encode + 2 blocks)", *_time(lambda: embed([img]), a.repeats)),
            ("OOD score + frontal check", *_time(lambda: (stats.ood_score(emb), stats.frontal_probability(emb)),
                                                  a.repeats)),
            ("whole gate, one image", *_time(lambda: gate.check([img], [HEADER]), a.repeats))]
    print(f"Input gate, {a.model.name}, device {pipe.device}, {a.threads} thread(s), image {img.shape[0]}x"
          f"{img.shape[1]}, {a.repeats} repeats\n\n| step | median ms | min ms |\n|---|---:|---:|")
    for step, med, low in rows:
        print(f"| {step} | {med:.1f} | {low:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
