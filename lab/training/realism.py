"""Report -> image realism: how the engine's synthesised images fare under the project's finding classifier.

The classifier (lab.eval.finding_classifier) is trained on the train split; its val AUROC on real
images is the reference, its AUROC on images generated from the val reports says whether synthesis shows
the findings asked for, and the Frechet distance in its 128-d feature space says how far the generated
images are from real ones (next to the same distance between real train and real val images).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import linalg

from lab.eval.finding_classifier import auroc, train_classifier


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (rows = samples)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(s1 @ s2, disp=False)
    if not np.isfinite(covmean).all():
        eps = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def evaluate_realism(data: Path | None, model_dir: Path | None, out: Path, steps: int | None = None,
                     guidance: float | None = None, limit: int | None = None, batch: int = 16,
                     condition: bool | None = None, head_guidance: float | None = None) -> dict:
    """Train the classifier (train split), report val AUROC, FD(train real, val real) and, with a model,
    FD(generated from val reports, val real). Writes out/realism.json and the generated images' grid."""
    from lab.data.cxr import load_cxr
    from lab.data.paired import SentenceBank, pair_reports

    out.mkdir(parents=True, exist_ok=True)
    train = list(load_cxr(data, ("train",)))
    val = list(load_cxr(data, ("val",), limit=limit))
    tr_img = [np.asarray(s.load_image()) for s in train]
    va_img = [np.asarray(s.load_image()) for s in val]
    clf = train_classifier(tr_img, [s.findings for s in train])
    f_tr, f_va = clf.embed(tr_img), clf.embed(va_img)
    clf.val_auroc = auroc(clf, f_va, [s.findings for s in val])
    clf.save(out / "finding_classifier.npz")  # the what-if evaluation takes it as --classifier
    res: dict = {"features": "PCA-128 of standardised 32x32 pixels + HOG(128 px); logistic regression heads",
                 "val_auroc": clf.val_auroc, "n_train": len(train), "n_val": len(val),
                 "fd_train_real_vs_val_real": frechet_distance(f_tr, f_va)}
    res["val_auroc_macro"] = float(np.mean(list(res["val_auroc"].values()))) if res["val_auroc"] else None
    if model_dir is not None:
        gen = synthesise_for_reports(model_dir, data, val, steps, guidance, batch, condition, head_guidance)
        f_gen = clf.embed(gen)
        res["fd_generated_vs_val_real"] = frechet_distance(f_gen, f_va)
        res["generated_val_auroc"] = auroc(clf, f_gen, [s.findings for s in val])
        res["synthesis"] = {"steps": steps, "guidance": guidance, "model": str(model_dir), "condition": condition,
                            "head_guidance": head_guidance}
        paired = pair_reports(val, SentenceBank.from_iu(), seed=0)
        res["n_generated"] = len(gen)
        Image.fromarray(np.concatenate([np.concatenate(gen[i * 8:(i + 1) * 8], 1) for i in range(2)], 0)).save(
            out / "generated_val_examples.png")
        (out / "generated_val_reports.jsonl").write_text("".join(
            json.dumps({"id": s.image_id, "findings": s.report_findings, "impression": s.report_impression}) + "\n"
            for s in paired[:16]))
    (out / "realism.json").write_text(json.dumps(res, indent=2))
    return res


def synthesise_for_reports(model_dir: Path, data: Path | None, val: list, steps: int | None, guidance: float | None,
                           batch: int = 16, condition: bool | None = None,
                           head_guidance: float | None = None) -> list[np.ndarray]:
    """One generated image per val sample from its (composed, seed 0) report, batched; `condition` tells a
    finding-conditioned model the report's findings and `head_guidance` steers the tokens with the finding head
    towards them (both default to the model's sampling config), as MedimPipeline.synthesise does."""
    import torch

    from engines.pipeline import MedimPipeline
    from engines.sampling.finding_states import state_row
    from engines.sampling.unmask import unmask
    from lab.data.paired import SentenceBank, pair_reports

    pipe = MedimPipeline.from_pretrained(model_dir)
    cfg = pipe.model_config
    paired = pair_reports(val, SentenceBank.from_iu(), seed=0)
    images = []
    opts = pipe._opts(steps, guidance, None)
    if head_guidance and not cfg.findings:
        raise ValueError("head guidance needs a model with a finding head")
    for k in range(0, len(paired), batch):
        chunk = paired[k:k + batch]
        reports = [f"{s.report_findings}\nIMPRESSION: {s.report_impression}" for s in chunk]
        text = pipe._tensor([pipe._report_ids(r) for r in reports])
        image = torch.full((len(chunk), cfg.image_len), cfg.image_mask_id, dtype=torch.long)
        states = [pipe._report_states(r, condition) for r in reports]
        told = None if states[0] is None else torch.tensor(
            [state_row(st, cfg.findings) for st in states], dtype=torch.float32, device=pipe.device)
        bias = pipe.synthesis_bias(reports, head_guidance)
        res = unmask(pipe._net, text, image, opts=opts, generator=torch.Generator().manual_seed(k),
                     uncond=(torch.full_like(text, cfg.text_mask_id), image), finding_states=told, image_bias=bias)
        for row in res.image:
            images.append(pipe.decode_tokens(row.reshape(cfg.image_grid, cfg.image_grid).numpy()))
    return images
