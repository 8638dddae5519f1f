"""Pointing game of the finding reader's Grad-CAM (class-contrastive as shown, and plain) on the finding boxes of the curated set (issue 28), beside the
backbone head's CAM, a centre map and random maps - per split, since the reader was trained on the train images.

    python -m lab.eval.reader_pointing [--model resources/weights/medim-small]

A hit: the map's maximum falls inside one of the image's boxes of that finding (CheXlocalize's pointing game); IoU of
the Otsu-thresholded map with the boxes beside it.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from explain.geometry import grid_to_image
from lab.eval.map_metrics import centre_map, iou, otsu_mask, pointing_hit, random_map

RANDOM_DRAWS = 20


def box_findings(sample) -> dict[str, list[tuple[float, float, float, float]]]:
    out: dict[str, list] = defaultdict(list)
    for b in sample.boxes:
        if b.kind == "finding" and b.finding:
            out[b.finding].append((b.x, b.y, b.w, b.h))
    return dict(out)


def pointing_rows(pipe, samples: Sequence) -> list[dict]:
    """One row per (image, boxed finding the reader reads): hit/IoU per map."""
    from explain.head_cam import finding_head_cam
    from explain.reader_cam import reader_grid

    rng = np.random.default_rng(0)
    rows = []
    for s in samples:
        tasks = {f: b for f, b in box_findings(s).items() if f in pipe.reader.findings}
        if not tasks:
            continue
        img = s.load_image()
        shape = img.shape[:2]
        for finding, boxes in tasks.items():
            row = {"image_id": s.image_id, "split": s.split, "finding": finding}
            maps = {"reader": grid_to_image(reader_grid(pipe.reader, img, [finding]), shape),  # as shown
                    "reader plain": grid_to_image(reader_grid(pipe.reader, img, [finding], contrast=False), shape),
                    "centre": centre_map(shape)}
            if finding in pipe.model_config.findings:
                maps["head CAM"] = grid_to_image(finding_head_cam(pipe.model, pipe.encode_image(img), [finding]),
                                                 shape)
            for name, m in maps.items():
                row[name] = (pointing_hit(m, boxes), iou(otsu_mask(m), boxes))
            rnd = [(pointing_hit(m, boxes), iou(otsu_mask(m), boxes))
                   for m in (random_map(shape, rng, pipe.grid) for _ in range(RANDOM_DRAWS))]
            row["random"] = (float(np.mean([h for h, _ in rnd])), float(np.mean([i for _, i in rnd])))
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    methods = ["reader", "reader plain", "head CAM", "centre", "random"]
    lines = ["| split | boxes | " + " | ".join(f"{m} hit / IoU" for m in methods) + " |",
             "|---|---:|" + "---:|" * len(methods)]
    for split in sorted({r["split"] for r in rows}):
        rs = [r for r in rows if r["split"] == split]
        cells = []
        for m in methods:
            have = [r[m] for r in rs if m in r]
            cells.append("-" if not have else
                         f"{np.mean([h for h, _ in have]):.2f} / {np.mean([i for _, i in have]):.2f}")
        lines.append(f"| {split} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.eval.reader_pointing", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    import torch

    from engines.default_weights import DEFAULT_WEIGHTS
    from engines.pipeline import MedimPipeline
    from lab.data.cxr import load_cxr

    torch.set_num_threads(args.threads)
    pipe = MedimPipeline.from_pretrained(args.model or DEFAULT_WEIGHTS, device="cpu")
    if pipe.reader is None:
        print("error: this model folder ships no finding reader", file=sys.stderr)
        return 2
    samples = [s for s in load_cxr(args.data, splits=("train", "val")) if box_findings(s)]
    rows = pointing_rows(pipe, samples)
    per_finding = defaultdict(list)
    for r in rows:
        per_finding[r["finding"]].append(r["reader"][0])
    print(f"Pointing game on {len(rows)} finding boxes ({len({r['image_id'] for r in rows})} images); "
          "the reader was trained on the train images\n")
    print(table(rows))
    print("\nreader hit rate per finding (train + val): " +
          ", ".join(f"{f} {np.mean(v):.2f} (n={len(v)})" for f, v in sorted(per_finding.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
