"""Draft a report for every image of a split with a model folder -> JSONL for `radstation-eval score`.

Images are drafted `batch` at a time by the product's own MedimPipeline.draft_reports (independent
studies in one batch: one forward per step for all of them), so the figures measure the engine's path.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm


def draft_split(model_dir: Path, data: Path | None, split: str, out: Path, steps: int | None, guidance: float | None,
                temperature: float | None, seed: int, limit: int | None, device: str = "auto",
                batch: int = 16, consensus: int | None = None, select: str | None = None,
                condition: str | None = None) -> dict:
    from engines.pipeline import MedimPipeline
    from lab.data.cxr import load_cxr

    pipe = MedimPipeline.from_pretrained(model_dir, device=device)
    samples = list(load_cxr(data, (split,), limit=limit))
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with out.open("w") as fh:
        for k in tqdm(range(0, len(samples), batch), desc=f"draft[{split}]"):
            chunk = samples[k:k + batch]
            texts = pipe.draft_reports([np.asarray(s.load_image()) for s in chunk], steps=steps, guidance=guidance,
                                       temperature=temperature, seed=seed + k, consensus=consensus, select=select,
                                       condition=condition)
            for s, (f, i) in zip(chunk, texts, strict=True):
                fh.write(json.dumps({"id": s.image_id, "findings": f, "impression": i,
                                     "text": " ".join(x for x in (f, i) if x)}) + "\n")
    return {"n": len(samples), "seconds": round(time.perf_counter() - t0, 1), "out": str(out),
            "steps": steps or pipe.default_steps, "guidance": pipe.default_guidance if guidance is None else guidance,
            "temperature": pipe.default_temperature if temperature is None else temperature, "seed": seed,
            "consensus": pipe.default_consensus if consensus is None else consensus,
            "select": pipe.default_select if select is None else select,
            "condition": pipe.default_condition if condition is None else condition,
            "weights_sha256": pipe.weights_hash}
