"""Answer the rule-derived questions of a split (`radstation-eval qa-references`) -> JSONL for
`radstation-eval vqa`. Batched like draft_split; same sampler and defaults as MedimPipeline.answer."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engines.diffusion.layout import qa_row
from engines.sampling.unmask import unmask
from engines.tokenizers.text import ANSWER, FINDINGS, IMG, IMPRESSION, QUESTION, SEP, UNK


def answer_split(model_dir: Path, data: Path | None, questions: Path, out: Path, steps: int | None,
                 guidance: float | None, seed: int, limit: int | None, batch: int = 32, device: str = "auto") -> dict:
    from engines.data.sample import SPLITS
    from engines.pipeline import MedimPipeline
    from lab.data.cxr import load_cxr

    pipe = MedimPipeline.from_pretrained(model_dir, device=device)
    cfg, tok = pipe.model_config, pipe.tokenizer
    rows = [json.loads(line) for line in questions.read_text().splitlines() if line.strip()][:limit]
    wanted = {r["image_id"] for r in rows}
    samples = {s.image_id: s for s in load_cxr(data, SPLITS) if s.image_id in wanted}  # any split, test included
    missing = sorted(wanted - set(samples))
    if missing:
        raise ValueError(f"{len(missing)} question image(s) are not in the curated data, e.g. {missing[:3]}")
    codes: dict[str, list[int]] = {}
    opts = pipe._opts(steps, guidance, 0.0)
    stop = {tok.ids[SEP], tok.pad_id}
    t0 = time.perf_counter()
    with out.open("w") as fh:
        for k in tqdm(range(0, len(rows), batch), desc="answer"):
            chunk = rows[k:k + batch]
            for r in chunk:
                if r["image_id"] not in codes:
                    codes[r["image_id"]] = pipe._codes(np.asarray(samples[r["image_id"]].load_image()))
            qrows = [qa_row(tok, r["question"], None, cfg.text_len) for r in chunk]
            text = pipe._tensor([pipe._text_mask_row(q.ids, q.prefix_len) for q in qrows])
            image = pipe._tensor([codes[r["image_id"]] for r in chunk])
            res = unmask(pipe._net, text, image, opts=opts, generator=torch.Generator().manual_seed(seed + k),
                         uncond=(text, torch.full_like(image, cfg.image_mask_id)),
                         text_banned=pipe._banned(UNK, QUESTION, ANSWER, IMG, FINDINGS, IMPRESSION))
            for r, q, ids in zip(chunk, qrows, res.text.tolist(), strict=True):
                ans = ids[q.prefix_len:]
                end = next((j for j, v in enumerate(ans) if v in stop), len(ans))
                fh.write(json.dumps({"id": r["id"], "answer": tok.decode(ans[:end]).strip()}) + "\n")
    return {"n": len(rows), "seconds": round(time.perf_counter() - t0, 1), "out": str(out), "steps": opts.steps,
            "guidance": opts.guidance}
