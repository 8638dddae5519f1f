"""Proof of the what-if job on a held-out split: does the finding classifier see the requested change?

For each image with a positive finding the finding is removed from its (composed) report; each normal
image gets one added. The edited image is compared with the control: the same region resampled with
the same seed under the UNEDITED report, so the VQ round trip and the resampling itself are not
counted as edit success. Success = the classifier's probability of the finding moved the asked way
(down for remove, up for add) relative to the control, judged on the image the app shows (the original
plus the model's change, composite.py) and, for comparison, on the decoded images alone. Preservation is
SSIM and mean absolute difference of the shown image vs the original (and of the decoded image vs the
original's VQ reconstruction), outside vs inside the region.

    python -m lab.eval.whatif --split val --limit 40
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from engines.counterfactual.edits import EditError, apply_instruction
from engines.counterfactual.metrics import preservation
from engines.counterfactual.ranking import rank_variants
from engines.counterfactual.whatif import DEFAULT_GUIDANCE, WhatIfRequest, run_variants, run_whatif
from engines.default_weights import DEFAULT_WEIGHTS
from lab.eval.finding_classifier import FEATURE_VERSION, FindingClassifier, train_on_splits

REMOVE_PHRASE = {
    "Cardiomegaly": "cardiomegaly", "Lung Opacity": "the opacity", "Lung Lesion": "the nodule",
    "Edema": "the edema", "Consolidation": "the consolidation", "Pneumonia": "the pneumonia",
    "Atelectasis": "the atelectasis", "Pneumothorax": "the pneumothorax", "Pleural Effusion": "the effusion",
    "Pleural Other": "the pleural thickening",
}
ADD_PHRASE = {
    "Pleural Effusion": "a right pleural effusion", "Cardiomegaly": "cardiomegaly",
    "Lung Lesion": "a right upper lobe nodule", "Lung Opacity": "a left lower lobe opacity",
}


def default_classifier_path() -> Path:
    import os

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "radstation" / f"finding_classifier_v{FEATURE_VERSION}.npz"


def build_cases(samples: Sequence, findings: Sequence[str], limit: int) -> list[tuple[object, str, str]]:
    """(sample, kind, finding) round-robin over (kind, finding) groups so every type gets cases."""
    groups: dict[tuple[str, str], list] = defaultdict(list)
    add_cycle = [f for f in ADD_PHRASE if f in findings]
    k_add = 0
    for s in samples:
        if s.findings.get("No Finding") == 1 and add_cycle:
            f = add_cycle[k_add % len(add_cycle)]
            k_add += 1
            groups[("add", f)].append(s)
            continue
        pos = [f for f in findings if s.findings.get(f) == 1 and f in REMOVE_PHRASE]
        if pos:  # the rarest positive first: common ones (opacity) would take every case otherwise
            pos.sort(key=lambda f: sum(1 for x in samples if x.findings.get(f) == 1))
            groups[("remove", pos[0])].append(s)
    cases: list[tuple[object, str, str]] = []
    keys = sorted(groups)
    depth = 0
    while len(cases) < limit and any(depth < len(groups[k]) for k in keys):
        for k in keys:
            if depth < len(groups[k]) and len(cases) < limit:
                cases.append((groups[k][depth], k[0], k[1]))
        depth += 1
    return cases


def moved(kind: str, p_edit: float, p_control: float) -> bool:
    """Did the judge's probability move the asked way (down for remove, up for add) against the control?"""
    return bool(p_edit < p_control if kind == "remove" else p_edit > p_control)


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def success_interval(k: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of a success rate: with 3-16 cases per finding type, whether a type has a majority
    is itself uncertain, and the table says how much."""
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def summarise(rows: list[dict]) -> list[dict]:
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        by[(r["kind"], r["finding"])].append(r)
    out = []
    for (kind, finding), rs in sorted(by.items()):
        lo, hi = success_interval(sum(bool(r["success"]) for r in rs), len(rs))
        out.append({
            "kind": kind, "finding": finding, "n": len(rs),
            "success": float(np.mean([r["success"] for r in rs])), "success_low": lo, "success_high": hi,
            "success_decoded": float(np.mean([r["success_decoded"] for r in rs])),
            "delta_p": float(np.mean([r["p_edit"] - r["p_control"] for r in rs])),
            "ssim_out": float(np.nanmean([r["ssim_outside"] for r in rs])),
            "ssim_in": float(np.nanmean([r["ssim_inside"] for r in rs])),
            "mad_out": float(np.nanmean([r["mad_outside"] for r in rs])),
            "mad_in": float(np.nanmean([r["mad_inside"] for r in rs])),
            "region": float(np.mean([r["region_share"] for r in rs])),
        })
    return out


def markdown(summary: list[dict], auroc: dict[str, float]) -> str:
    lines = ["| edit | finding | n | success vs control (95% CI) | decoded images only | mean dp (edit-control) "
             "| SSIM out | SSIM in | MAD out | MAD in | region share | classifier val AUROC |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['kind']} | {s['finding']} | {s['n']} | {s['success']:.2f} "
                     f"({s['success_low']:.2f}-{s['success_high']:.2f}) | {s['success_decoded']:.2f} | "
                     f"{s['delta_p']:+.3f} | "
                     f"{_fmt(s['ssim_out'])} | {_fmt(s['ssim_in'])} | {s['mad_out']:.2f} | {s['mad_in']:.2f} | "
                     f"{s['region']:.2f} | {_fmt(auroc.get(s['finding'], float('nan')))} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.eval.whatif", description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--model", type=Path, default=DEFAULT_WEIGHTS)
    ap.add_argument("--classifier", type=Path, default=None,
                    help="finding classifier .npz (as `radstation-train realism` saves it; default: trained on the "
                         "train split and cached)")
    ap.add_argument("--root", type=Path, default=None, help="curated cxr data root")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    ap.add_argument("--head-guidance", type=float, default=None,
                    help="finding-head guidance (nats; 0 = off): the head steers the edited resample the asked way "
                         "(default: the weights' whatif_head_guidance)")
    ap.add_argument("--head-region", type=float, default=None,
                    help="weight in [0, 1] of the finding head's potential in choosing the region, next to attention "
                         "and likelihood (default: the weights' whatif_head_region)")
    ap.add_argument("--area", type=float, default=0.15)
    ap.add_argument("--margin", type=int, default=1)
    ap.add_argument("--method", default="combined")
    ap.add_argument("--prior-weight", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", type=int, default=1,
                    help="resamples per case; > 1: the finding head's best of N is judged against the head's "
                         "best of N control resamples (the same selection, under the unedited report)")
    ap.add_argument("--json", type=Path, default=None, help="write per-case rows and the summary here")
    ap.add_argument("--ceiling", action="store_true",
                    help="only measure how much of what the judge sees survives the VQ round trip (the judge's AUROC "
                         "on the split's originals vs their reconstructions; lab.eval.whatif_ceiling) and stop")
    args = ap.parse_args(argv)
    if args.limit < 1:
        ap.error("--limit must be >= 1")
    if args.variants < 1:
        ap.error("--variants must be >= 1")
    if args.split == "train":
        ap.error("edits are judged on a held-out split (val), not on train")

    import torch

    from engines.pipeline import MedimPipeline
    from lab.data import SentenceBank, load_cxr, pair_reports

    torch.set_num_threads(args.threads)
    try:
        pipe = MedimPipeline.from_pretrained(args.model, device="cpu")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: cannot load the model: {exc}", file=sys.stderr)
        return 2
    ds = load_cxr(args.root, splits=("train", args.split))
    clf_path = args.classifier or default_classifier_path()
    if clf_path.exists():
        try:
            clf = FindingClassifier.load(clf_path)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    elif args.classifier is not None:
        print(f"error: finding classifier {clf_path} does not exist", file=sys.stderr)
        return 2
    else:
        print(f"training the finding classifier on train (cached in {clf_path}) ...", file=sys.stderr)
        clf = train_on_splits(ds.by_split("train"), ds.by_split(args.split))
        clf.save(clf_path)
    bank = SentenceBank.from_iu(None if args.root is None else args.root / "text_only" / "iu_xray_reports.jsonl")
    samples = [s for s in pair_reports(ds.by_split(args.split), bank, seed=args.seed) if s.view != "lateral"]
    if args.ceiling:
        from lab.eval import whatif_ceiling as ceiling

        table = ceiling.reconstruction_ceiling(pipe, clf, samples)
        print(f"the judge on {len(samples)} {args.split} frontal images and their VQ reconstructions "
              f"(model {args.model}, {pipe.weights_hash[:12]}; classifier {clf_path})")
        print(ceiling.markdown(table))
        if args.json:
            args.json.write_text(json.dumps({"ceiling": table}, indent=2))
        return 0
    cases = build_cases(samples, clf.findings, args.limit)
    rows: list[dict] = []
    t0 = time.perf_counter()
    for k, (s, kind, finding) in enumerate(cases, 1):
        report = s.report_findings + ("\n\nIMPRESSION: " + s.report_impression if s.report_impression else "")
        phrase = (REMOVE_PHRASE if kind == "remove" else ADD_PHRASE)[finding]
        try:
            edited = apply_instruction(report, f"{kind} {phrase}")
            image = (s.load_image() * 255).round().astype(np.uint8)
            seeds = tuple(range(args.seed, args.seed + args.variants))
            req = WhatIfRequest(image, report, edited, seeds=seeds, method=args.method, area=args.area,
                                margin=args.margin, steps=args.steps, guidance=args.guidance,
                                head_guidance=args.head_guidance, head_region=args.head_region,
                                prior_weight=args.prior_weight)
            res = run_whatif(pipe, req, with_control=args.variants == 1)
            if args.variants > 1:  # controls get the same pick: the head's best of N resamples, unedited report
                controls = run_variants(pipe, replace(req, edited_report=report, allow_no_change=True, rank=False),
                                        seeds, res.token_mask).variants
                res.control = rank_variants(pipe, controls, res.reconstruction, res.edit)[0]
        except EditError as exc:
            print(f"[{k}/{len(cases)}] {s.image_id}: skipped ({exc})", file=sys.stderr)
            continue
        v, c = res.variants[0], res.control
        p_edit, p_ctrl, p_orig, p_edit_dec, p_ctrl_dec = (clf.probability(im, finding) for im in (
            v.image, c.image, res.original, v.decoded, c.decoded))
        decoded = preservation(res.reconstruction, v.decoded, res.pixel_mask)
        rows.append({"image_id": s.image_id, "kind": kind, "finding": finding, "p_edit": p_edit,
                     "p_control": p_ctrl, "p_original": p_orig, "success": moved(kind, p_edit, p_ctrl),
                     "p_edit_decoded": p_edit_dec, "p_control_decoded": p_ctrl_dec,
                     "success_decoded": moved(kind, p_edit_dec, p_ctrl_dec),
                     **v.preservation.as_dict(), **{f"decoded_{k}": x for k, x in decoded.as_dict().items()},
                     "changes": [ch.describe() for ch in res.edit.changes],
                     "elapsed_s": v.elapsed_s + c.elapsed_s})
        print(f"[{k}/{len(cases)}] {s.image_id} {kind} {finding}: p edit {p_edit:.3f} vs control {p_ctrl:.3f} "
              f"({'ok' if rows[-1]['success'] else 'no'}; decoded {p_edit_dec:.3f} vs {p_ctrl_dec:.3f}) "
              f"SSIM out {v.preservation.ssim_outside:.3f}", file=sys.stderr)
    if not rows:
        print("error: no case could be run", file=sys.stderr)
        return 1
    summary = summarise(rows)
    print(f"what-if edits on {args.split}: {len(rows)} cases, model {args.model} ({pipe.weights_hash[:12]}), "
          f"steps {args.steps or pipe.default_steps}, guidance {args.guidance}, head guidance {pipe.default_head_guidance if args.head_guidance is None else args.head_guidance}, region {args.method} "
          f"(head weight {pipe.default_head_region if args.head_region is None else args.head_region}) "
          f"area {args.area} margin {args.margin} prior {args.prior_weight}, seed {args.seed}, "
          f"best of {args.variants} by the finding head, {time.perf_counter() - t0:.0f} s")
    print(f"classifier: {clf_path} (the project's finding classifier, lab.eval.finding_classifier: pixels + "
          f"HOG -> PCA -> logistic regression per finding, trained on train)")
    print(markdown(summary, clf.val_auroc) + "\n")
    for label, key in (("shown images", "success"), ("decoded images only", "success_decoded")):
        print(f"overall success ({label}) {np.mean([r[key] for r in rows]):.2f}; "
              f"finding types with a majority: {sum(s[key] > 0.5 for s in summary)} of {len(summary)}")
    ssim = {k: float(np.nanmean([r[k] for r in rows]))
            for k in ("ssim_outside", "ssim_inside", "decoded_ssim_outside", "decoded_ssim_inside")}
    print(f"SSIM outside / inside the region: shown vs original {ssim['ssim_outside']:.3f} / "
          f"{ssim['ssim_inside']:.3f}, decoded vs reconstruction {ssim['decoded_ssim_outside']:.3f} / "
          f"{ssim['decoded_ssim_inside']:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary, "auroc": clf.val_auroc}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
