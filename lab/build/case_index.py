"""Build a development similar-case index of the curated training data (their composed reports) with the
engine's embedding: ``python -m lab.build.case_index --out DIR [--model DIR] [--data DIR] [--limit N]``.
Point the `similar_dev_index` setting at DIR to see these cases in the "Similar studies" panel."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.build.case_index", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    import torch

    from engines.default_weights import DEFAULT_WEIGHTS
    from engines.pipeline import MedimPipeline
    from engines.similar import CaseIndex, CaseRecord
    from engines.similar.embeddings import index_name
    from engines.similar.worker_jobs import EMBEDDER
    from lab.data.cxr import load_cxr
    from lab.data.paired import SentenceBank, pair_reports

    torch.set_num_threads(max(a.threads, 1))
    pipe = MedimPipeline.from_pretrained(a.model or DEFAULT_WEIGHTS, device="cpu")
    ds = load_cxr(a.data, splits=("train",), limit=a.limit)
    bank = SentenceBank.from_iu(None if a.data is None else a.data / "text_only" / "iu_xray_reports.jsonl")
    train = pair_reports(list(ds), bank, seed=0)
    blank = [np.zeros((8, 8), np.uint8)]
    idx = CaseIndex.open_or_create(a.out, int(pipe.embed(blank).shape[1]), EMBEDDER)
    # the drafts' vote uses the 32x32 embedding (sentence_decoding.case_embedding): DIR/pixels32, as index_case
    # writes a site's index
    pix = CaseIndex.open_or_create(a.out / "pixels32", int(pipe.embed(blank, "pixels32").shape[1]),
                                   index_name("pixels32"))
    for k in range(0, len(train), 64):
        chunk = train[k:k + 64]
        images = [np.asarray(s.load_image()) for s in chunk]
        records = [CaseRecord(s.image_id, s.report_findings, s.report_impression, "dev", {}, str(s.image_path or ""),
                              f"{s.image_id} ({s.source}, composed report)") for s in chunk]
        idx.add(records, np.stack([pipe.embed([im])[0] for im in images]))
        pix.add(records, pipe.embed(images, "pixels32"))
        print(f"{min(k + 64, len(train))}/{len(train)}", file=sys.stderr, flush=True)
    idx.save(a.out)
    pix.save(a.out / "pixels32")
    print(f"{a.out}: {len(idx)} development cases indexed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
