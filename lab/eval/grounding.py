"""Proof tables for grounding and uncertainty on the real radiographs.

    python -m lab.eval.grounding --weights resources/weights/medim-small [--out DIR]

1. Finding boxes (NIH-derived images, train + val, per split with N): for each box's finding, the
   sentence of the image's reference report that asserts it (the composed report the engine is trained
   on; a template sentence where none does) and the finding's mention in it are explained; pointing-game
   hit rate and IoU (Otsu, as CheXlocalize) per method, against a centre map and a random map.
2. Lung boxes (covid collection, anatomy): "There is an opacity in the right lung. ... left lung." -
   does each sentence's / side phrase's map point into the named lung, and does it weigh the named lung
   above the other one?
3. Uncertainty (val): per (image, finding) decision of the engine's draft, the disagreement of K other
   sampled drafts (and the draft's token entropy) as a score for "the decision is wrong" (AUROC), and
   micro F1 after withholding the 20% most uncertain decisions vs 20% at random.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.labeler import FINDINGS, label_report
from explain.report import FindingMap, SentenceMap, SpanMap, explain_spans
from explain.uncertainty import finding_state, finding_uncertainty, sample_drafts
from lab.eval.map_metrics import (
    auroc,
    centre_map,
    iou,
    mass_in,
    otsu_mask,
    pointing_hit,
    random_map,
    withheld_f1,
)

TEMPLATE = {
    "Pneumonia": "There is pneumonia.", "Cardiomegaly": "There is cardiomegaly.",
    "Lung Lesion": "There is a lung mass.", "Lung Opacity": "There is a lung opacity.",
    "Pleural Effusion": "There is a pleural effusion.", "Atelectasis": "There is atelectasis.",
    "Pneumothorax": "There is a pneumothorax.", "Edema": "There is pulmonary edema.",
    "Consolidation": "There is consolidation.", "Fracture": "There is a rib fracture.",
}
LUNG_TEXT = "FINDINGS: There is an opacity in the right lung. There is an opacity in the left lung."
RANDOM_DRAWS = 20


@dataclass
class BoxTask:
    image_id: str
    split: str
    finding: str
    boxes: list[tuple[float, float, float, float]]
    report: str
    sentence: SentenceMap
    mention: FindingMap
    templated: bool


def _reference_report(sample, bank) -> str:
    from lab.data.paired import compose_report

    if sample.has_report:
        return sample.report_text
    f, i = compose_report(sample, bank, seed=0)
    return sample.with_report(f, i, real=False).report_text


def _spans_for_finding(report: str, finding: str, shape) -> tuple[SentenceMap, FindingMap] | None:
    for s in label_report(report).sentences:
        if s.findings.get(finding) == 1:
            ms = [m for m in s.mentions if m.finding == finding]
            a, b = min(m.start for m in ms), max(m.end for m in ms)
            return (SentenceMap(s.text, s.start, s.end, image_shape=shape, findings=dict(s.findings)),
                    FindingMap(report[a:b], a, b, image_shape=shape, finding=finding, sentence=0))
    return None


def box_tasks(samples, bank, shape=(256, 256)) -> list[BoxTask]:
    tasks = []
    for s in samples:
        by_finding: dict[str, list] = defaultdict(list)
        for b in s.boxes:
            if b.kind == "finding" and b.finding:
                by_finding[b.finding].append((b.x, b.y, b.w, b.h))
        if not by_finding:
            continue
        report = _reference_report(s, bank)
        for finding, boxes in by_finding.items():
            spans = _spans_for_finding(report, finding, shape)
            templated = spans is None
            if templated:
                report_f = f"FINDINGS: {TEMPLATE.get(finding, f'There is {finding.lower()}.')}"
                spans = _spans_for_finding(report_f, finding, shape)
                if spans is None:
                    continue
            tasks.append(BoxTask(s.image_id, s.split, finding, boxes, report_f if templated else report,
                                 spans[0], spans[1], templated))
    return tasks


def _score(values: np.ndarray, boxes) -> tuple[bool, float]:
    return pointing_hit(values, boxes), iou(otsu_mask(values), boxes)


def run_boxes(pipe, samples_by_id, tasks: list[BoxTask], methods, ig_steps, attention_steps, log) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for n, t in enumerate(tasks):
        img = samples_by_id[t.image_id].load_image()
        shape = img.shape[:2]
        spans: list[SpanMap] = [t.sentence, t.mention]
        for sp in spans:
            sp.image_shape = shape
        explain_spans(pipe, img, t.report, spans, methods=methods, ig_steps=ig_steps,
                      attention_steps=attention_steps)
        row = {"image_id": t.image_id, "split": t.split, "finding": t.finding, "templated": t.templated}
        for label, sp in (("sentence", t.sentence), ("mention", t.mention)):
            for m in methods:
                pm = sp.pixel_map(m)
                if pm is not None:
                    row[f"{m}/{label}"] = _score(pm, t.boxes)
        row["centre"] = _score(centre_map(shape), t.boxes)
        rnd = [_score(random_map(shape, rng, pipe.grid), t.boxes) for _ in range(RANDOM_DRAWS)]
        row["random"] = (float(np.mean([h for h, _ in rnd])), float(np.mean([i for _, i in rnd])))
        rows.append(row)
        log(f"boxes {n + 1}/{len(tasks)}")
    return rows


def run_lungs(pipe, samples, methods, ig_steps, attention_steps, log) -> list[dict]:
    rows = []
    rng = np.random.default_rng(1)
    a = LUNG_TEXT.index("right lung")
    b = LUNG_TEXT.index("left lung")
    s1, s2 = LUNG_TEXT.index("There"), LUNG_TEXT.rindex("There")
    for n, s in enumerate(samples):
        lungs = {bx.label.split()[0].lower(): [(bx.x, bx.y, bx.w, bx.h)] for bx in s.boxes if bx.kind == "anatomy"}
        if set(lungs) != {"left", "right"}:
            continue
        img = s.load_image()
        shape = img.shape[:2]
        spans = {("right", "sentence"): SentenceMap("", s1, s2, image_shape=shape),
                 ("left", "sentence"): SentenceMap("", s2, len(LUNG_TEXT), image_shape=shape),
                 ("right", "phrase"): SpanMap("right lung", a, a + 10, image_shape=shape),
                 ("left", "phrase"): SpanMap("left lung", b, b + 9, image_shape=shape)}
        explain_spans(pipe, img, LUNG_TEXT, list(spans.values()), methods=methods, ig_steps=ig_steps,
                      attention_steps=attention_steps)
        row = {"image_id": s.image_id, "split": s.split}
        for (side, kind), sp in spans.items():
            other = "left" if side == "right" else "right"
            for m in methods:
                pm = sp.pixel_map(m)
                if pm is not None:
                    row[f"{m}/{kind}/{side}"] = (pointing_hit(pm, lungs[side]),
                                                 mass_in(pm, lungs[side]) > mass_in(pm, lungs[other]))
            c = centre_map(shape)
            row[f"centre/{side}"] = (pointing_hit(c, lungs[side]), mass_in(c, lungs[side]) > mass_in(c, lungs[other]))
            rnd = [random_map(shape, rng, pipe.grid) for _ in range(RANDOM_DRAWS)]
            row[f"random/{side}"] = (float(np.mean([pointing_hit(r, lungs[side]) for r in rnd])),
                                     float(np.mean([mass_in(r, lungs[side]) > mass_in(r, lungs[other]) for r in rnd])))
        rows.append(row)
        log(f"lungs {n + 1}/{len(samples)}")
    return rows


def run_uncertainty(pipe, samples, k: int, steps: int | None, log) -> dict:
    pred, ref, disagree, token_ent, asserted = [], [], [], [], []
    for n, s in enumerate(samples):
        img = s.load_image()
        main = pipe.draft_report([img], seed=0, steps=steps, mode="free")  # the sampler's token uncertainty
        drafts = sample_drafts(pipe, [img], k, seed=0, steps=steps)
        lab = label_report(main.text)
        fu = finding_uncertainty(dict(lab.findings), [dict(label_report(d).findings) for d in drafts])
        for f in FINDINGS:
            p = finding_state(lab.findings, f) == "present"
            pred.append(p)
            ref.append(s.findings.get(f) == 1)
            disagree.append(fu[f].uncertainty + 1e-3 * fu[f].vote_entropy)
            spans = [(m.start, m.end) for sent in lab.sentences for m in sent.mentions if m.finding == f]
            ents = [t.entropy for t in main.tokens for a, b in spans if t.char_start < b and a < t.char_end]
            token_ent.append(max(ents) if ents else 0.0)
            asserted.append(p)
        log(f"uncertainty {n + 1}/{len(samples)}")
    pred_a, ref_a = np.array(pred), np.array(ref)
    wrong = pred_a != ref_a
    out = {"images": len(samples), "k": k, "steps": steps, "decisions": len(pred), "wrong": int(wrong.sum())}
    for name, score in (("disagreement", disagree), ("token_entropy", token_ent)):
        sc = np.array(score)
        pos = np.array(asserted)
        full, kept, rand = withheld_f1(pred_a, ref_a, sc, 0.2)
        out[name] = {"auroc_all": auroc(sc, wrong), "auroc_asserted_positive": auroc(sc[pos], wrong[pos]),
                     "f1_all": full, "f1_withhold_top20": kept, "f1_withhold_random20": rand}
    out["asserted_positive"] = int(np.sum(asserted))
    return out


def _rate(vals) -> tuple[float, float]:
    return float(np.mean([v[0] for v in vals])), float(np.mean([v[1] for v in vals]))


def box_table(rows: list[dict], methods) -> str:
    cols = [f"{m}/{k}" for m in methods for k in ("sentence", "mention")] + ["centre", "random"]
    lines = ["| split | N | " + " | ".join(f"{c} hit / IoU" for c in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for split in ("train", "val", "all"):
        sel = [r for r in rows if split == "all" or r["split"] == split]
        if not sel:
            continue
        cells = []
        for c in cols:
            vals = [r[c] for r in sel if c in r]
            cells.append("{:.2f} / {:.3f}".format(*_rate(vals)) if vals else "-")
        lines.append(f"| {split} | {len(sel)} | " + " | ".join(cells) + " |")
    per = defaultdict(list)
    for r in rows:
        per[r["finding"]].append(r)
    lines += ["", "| finding | N | " + " | ".join(f"{c} hit" for c in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for f, sel in sorted(per.items()):
        cells = [f"{_rate([r[c] for r in sel if c in r])[0]:.2f}" if any(c in r for r in sel) else "-"
                 for c in cols]
        lines.append(f"| {f} | {len(sel)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def lung_table(rows: list[dict], methods) -> str:
    cols = [f"{m}/{k}" for m in methods for k in ("sentence", "phrase")] + ["centre", "random"]
    lines = ["| split | images | " + " | ".join(f"{c} hit / named>other" for c in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for split in ("train", "val", "all"):
        sel = [r for r in rows if split == "all" or r["split"] == split]
        if not sel:
            continue
        cells = []
        for c in cols:
            vals = [r[f"{c}/{side}"] for r in sel for side in ("left", "right") if f"{c}/{side}" in r]
            cells.append("{:.2f} / {:.2f}".format(*_rate(vals)) if vals else "-")
        lines.append(f"| {split} | {len(sel)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def uncertainty_table(u: dict) -> str:
    lines = [f"val images: {u['images']}, K = {u['k']} extra drafts, steps = {u['steps']}, "
             f"{u['decisions']} (image, finding) decisions, {u['wrong']} wrong, "
             f"{u['asserted_positive']} asserted positive",
             "", "| score | AUROC (all decisions) | AUROC (asserted positives) | micro F1 all | "
             "F1 withhold 20% most uncertain | F1 withhold 20% random |", "|---|---|---|---|---|---|"]
    for name in ("disagreement", "token_entropy"):
        d = u[name]

        def f(v):
            return "-" if v is None else f"{v:.3f}"

        lines.append(f"| {name} | {f(d['auroc_all'])} | {f(d['auroc_asserted_positive'])} | {f(d['f1_all'])} | "
                     f"{f(d['f1_withhold_top20'])} | {f(d['f1_withhold_random20'])} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lab.eval.grounding", description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, default=Path("resources/weights/medim-small"))
    p.add_argument("--data", type=Path, default=None, help="cxr data root (default: the shared data folder)")
    p.add_argument("--methods", default="attention,ig")
    p.add_argument("--ig-steps", type=int, default=16)
    p.add_argument("--attention-steps", type=int, default=4)
    p.add_argument("--lung-limit", type=int, default=None, help="at most this many covid images with lung boxes")
    p.add_argument("--uncertainty-n", type=int, default=60, help="val images for the uncertainty check (0 skips)")
    p.add_argument("--k", type=int, default=4, help="sampled drafts per image for disagreement")
    p.add_argument("--steps", type=int, default=16, help="unmasking steps per draft")
    p.add_argument("--skip", default="", help="comma list of parts to skip: boxes,lungs,uncertainty")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", type=Path, default=None, help="write grounding_eval.json and .md here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from engines.pipeline import MedimPipeline
    from lab.data import load_cxr
    from lab.data.iu import load_iu_reports
    from lab.data.paired import SentenceBank

    if args.threads:
        torch.set_num_threads(args.threads)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if not args.weights.exists():
        print(f"error: model folder {args.weights} does not exist (pass --weights)", file=sys.stderr)
        return 2
    pipe = MedimPipeline.from_pretrained(args.weights, args.device)
    ds = load_cxr(args.data)
    root = Path(args.data) if args.data else None
    samples = list(ds.samples)
    by_id = {s.image_id: s for s in samples}
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    result: dict = {"weights": str(args.weights), "weights_hash": pipe.weights_hash[:16], "methods": list(methods),
                    "ig_steps": args.ig_steps, "attention_steps": args.attention_steps}
    md = [f"# Grounding and uncertainty ({args.weights}, weights {pipe.weights_hash[:12]})", ""]
    if "boxes" not in skip:
        from lab.data.cxr import default_cxr_root

        iu_path = (root or default_cxr_root()) / "text_only" / "iu_xray_reports.jsonl"
        bank = SentenceBank.from_reports(load_iu_reports(iu_path))
        tasks = box_tasks([s for s in samples if s.split in ("train", "val")], bank)
        rows = run_boxes(pipe, by_id, tasks, methods, args.ig_steps, args.attention_steps, log)
        result["boxes"] = rows
        md += ["## Finding boxes: pointing game hit rate / IoU (Otsu)",
               f"{len(rows)} (image, finding) pairs, {sum(r['templated'] for r in rows)} with a template sentence",
               "", box_table(rows, methods), ""]
    if "lungs" not in skip:
        lung_samples = [s for s in samples if sum(b.kind == "anatomy" for b in s.boxes) >= 2]
        if args.lung_limit is not None:
            lung_samples = lung_samples[: args.lung_limit]
        rows = run_lungs(pipe, lung_samples, methods, args.ig_steps, args.attention_steps, log)
        result["lungs"] = rows
        md += ["## Lung boxes: map of 'right/left lung' text in the named lung (hit) and weighted above the "
               "other lung", "", lung_table(rows, methods), ""]
    if "uncertainty" not in skip and args.uncertainty_n > 0:
        val = [s for s in samples if s.split == "val" and s.findings][: args.uncertainty_n]
        u = run_uncertainty(pipe, val, args.k, args.steps, log)
        result["uncertainty"] = u
        md += ["## Uncertainty usefulness (val)", "", uncertainty_table(u), ""]
    text = "\n".join(md)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "grounding_eval.json").write_text(json.dumps(result, indent=1, default=str))
        (args.out / "grounding_eval.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
