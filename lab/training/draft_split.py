"""Draft a report for every image of a split with a model folder -> JSONL for `radstation-eval score`.

Images are drafted `batch` at a time (independent studies in one batch: one forward per step for
all of them), with the same sampler and defaults as MedimPipeline.draft_report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engines.diffusion.layout import split_report
from engines.sampling.consensus import select_draft
from engines.sampling.finding_states import state_row, states_from_head
from engines.sampling.unmask import unmask
from engines.tokenizers.text import ANSWER, FINDINGS, IMG, QUESTION, UNK


def draft_batch(pipe, images: list[np.ndarray], steps: int | None, guidance: float | None,
                temperature: float | None, seed: int, consensus: int | None = None,
                select: str | None = None, condition: str | None = None) -> list[tuple[str, str]]:
    """(findings, impression) per image, each image its own study; with `consensus` K > 1 each image gets
    K rows and one is kept by `select`; `condition` tells a conditioned model the head's reading (as
    MedimPipeline.draft_report)."""
    cfg = pipe.model_config
    k = pipe.default_consensus if consensus is None else int(consensus)
    mode = pipe.default_select if select is None else select
    rule = pipe.condition_rule(condition)
    opts = pipe._opts(steps, guidance, temperature, pool=False)
    codes = [pipe._codes(im) for im in images]
    probs = pipe.finding_probabilities_of_codes(codes) if rule != "none" or (mode.startswith("verified") and k > 1) \
        else [None] * len(images)
    told = None
    if rule == "head-prior":
        told = torch.tensor([state_row(states_from_head(p, pipe.finding_prior, cfg.findings), cfg.findings)
                             for p in probs for _ in range(k)], dtype=torch.float32, device=pipe.device)
    image = pipe._tensor([c for c in codes for _ in range(k)])
    row = pipe._text_mask_row([pipe.tokenizer.ids[FINDINGS]], 1)
    text = pipe._tensor([row] * image.shape[0])
    uncond = (text, torch.full_like(image, cfg.image_mask_id))
    res = unmask(pipe._net, text, image, opts=opts, generator=torch.Generator().manual_seed(seed), uncond=uncond,
                 text_banned=pipe._banned(UNK, QUESTION, ANSWER, IMG, FINDINGS), finding_states=told)
    drafts = []
    for r, ids in enumerate(res.text.tolist()):
        f, i = split_report(pipe.tokenizer, ids)
        conf = res.text_confidence[r]
        drafts.append((pipe.tokenizer.decode(f).strip(), pipe.tokenizer.decode(i).strip(),
                       float(conf[~conf.isnan()].mean()) if (~conf.isnan()).any() else 0.0))
    out = []
    for j in range(len(images)):
        group = drafts[j * k:(j + 1) * k]
        if k == 1:  # nothing to choose between (as MedimPipeline.draft_report)
            out.append(group[0][:2])
            continue
        best, _ = select_draft([" ".join(x for x in d[:2] if x) for d in group], [d[2] for d in group], mode=mode,
                               finding_probs=probs[j],
                               finding_prior=pipe.finding_prior)
        out.append(group[best][:2])
    return out


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
            texts = draft_batch(pipe, [np.asarray(s.load_image()) for s in chunk], steps, guidance, temperature,
                                seed + k, consensus, select, condition)
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
