"""Finding-reader latency: milliseconds per image of each step of FindingReader.probabilities, one image at a time
(the reader runs at every draft and every answer), median over real val radiographs.

    python benchmarks/reader.py [--model resources/weights/medim-small] [--threads 1] [--images 40] [--repeats 3]

Prints a markdown table (step, median ms, p90 ms, device, threads, images); the images are the first val
radiographs of the shared data when present, else synthetic ones.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "resources" / "weights" / "medim-small"


def _images(n: int) -> tuple[list[np.ndarray], str]:
    try:
        from lab.data.cxr import load_cxr

        samples = [s for s in load_cxr(None, splits=("val",)) if s.view == "frontal"][:n]
        if samples:
            return [np.asarray(s.load_image()) for s in samples], f"{len(samples)} val radiographs"
    except (FileNotFoundError, OSError, ValueError):
        pass
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (256, 256), dtype=np.uint8) for _ in range(n)], f"{n} synthetic images"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3, help="timed passes over the images (after one warm-up)")
    args = ap.parse_args(argv)

    import torch

    from engines.reader.reader import FindingReader

    torch.set_num_threads(args.threads)
    reader = FindingReader.from_pretrained(args.model / "reader")
    images, what = _images(args.images)
    steps: dict[str, list[float]] = {"crop (lung box)": [], "CNN members": [], "linear readout": [],
                                     "probabilities (all)": []}

    def timed(key: str, fn, *a):
        t = time.perf_counter()
        out = fn(*a)
        steps[key].append((time.perf_counter() - t) * 1000)
        return out

    reader.probabilities(images[:1])  # warm-up
    for _ in range(args.repeats):
        for im in images:
            crops, _ = timed("crop (lung box)", reader.prepare, [im])
            if reader.members:
                timed("CNN members", reader.cnn_scores, crops)
            if reader.linear is not None:
                timed("linear readout", lambda c: reader.linear.logits(reader.crop_features(c)), crops)
            timed("probabilities (all)", reader.probabilities, [im])
    print(f"Finding reader {args.model / 'reader'}: {len(reader.members)} CNN member(s), "
          f"{'a' if reader.linear is not None else 'no'} linear readout; {what}, {args.repeats} passes\n")
    print("| step | median ms / image | p90 ms | device | threads |")
    print("|---|---:|---:|---|---:|")
    for key, vals in steps.items():
        if vals:
            p90 = float(np.percentile(vals, 90))
            print(f"| {key} | {statistics.median(vals):.1f} | {p90:.1f} | cpu ({platform.processor() or platform.machine()})"
                  f" | {args.threads} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
