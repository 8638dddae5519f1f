"""Agreement of the labeler with the manual MeSH tags of the IU X-ray reports.

Run: ``python -m lab.eval.labeler_agreement [--reports PATH] [--json OUT] [--errors FINDING]``.

Convention: a finding is *tagged* when a manual (``mesh_major``) term maps to it (engines.labeler.sources
.MESH_TO_FINDINGS); the labeler *predicts* it when its report-level value is positive (1) or uncertain
(-1), because MeSH tags hedged findings too ("Cardiomegaly/borderline"). The strict column counts only 1.
Reports indexed "No Indexing" or with no text are left out. Findings MeSH never tags are not scored.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engines.labeler.findings import FINDINGS, PATHOLOGIES
from engines.labeler.label import label_report
from engines.labeler.sources import findings_from_mesh
from lab.data.iu import IUReport, default_iu_path, load_iu_reports


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tp_strict: int = 0
    fp_strict: int = 0
    fn_strict: int = 0

    @staticmethod
    def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return p, r, f


#: MeSH "normal" means the whole study is normal, CheXpert's No Finding only that none of its 12
#: pathologies is present (a calcified granuloma or scoliosis is still "No Finding"). This extra row scores
#: the labeler against the CheXpert definition applied to the MeSH tags.
NO_FINDING_CHEXPERT = "No Finding (CheXpert def.)"


def measure(reports: Sequence[IUReport]) -> dict:
    names = [FINDINGS[0], NO_FINDING_CHEXPERT, *FINDINGS[1:]]
    counts = {f: Counts() for f in names}
    used = 0
    errors: dict[str, list[dict]] = {f: [] for f in names}
    for rep in reports:
        if not rep.text or any(m.startswith("No Indexing") for m in rep.mesh_major):
            continue
        used += 1
        tagged = findings_from_mesh(rep.mesh_major)
        if not tagged & set(PATHOLOGIES):
            tagged.add(NO_FINDING_CHEXPERT)
        pred = dict(label_report(rep.text).findings)
        if pred.get("No Finding") == 1:
            pred[NO_FINDING_CHEXPERT] = 1
        for f in names:
            c = counts[f]
            t = f in tagged
            p = pred.get(f) in (1, -1)
            ps = pred.get(f) == 1
            c.tp += t and p
            c.fp += (not t) and p
            c.fn += t and not p
            c.tp_strict += t and ps
            c.fp_strict += (not t) and ps
            c.fn_strict += t and not ps
            if t != p:
                errors[f].append({"uid": rep.uid, "kind": "FN" if t else "FP", "mesh": rep.mesh_major, "text": rep.text})
    rows = []
    for f in names:
        c = counts[f]
        if c.tp + c.fn == 0:
            continue  # MeSH never tags it
        p, r, f1 = Counts.prf(c.tp, c.fp, c.fn)
        _, _, f1s = Counts.prf(c.tp_strict, c.fp_strict, c.fn_strict)
        rows.append({"finding": f, "tagged": c.tp + c.fn, "predicted": c.tp + c.fp, "precision": p, "recall": r,
                     "f1": f1, "f1_strict": f1s})
    scored = [r for r in rows if r["finding"] in PATHOLOGIES]  # micro/macro over the 12 pathologies
    tp = sum(counts[r["finding"]].tp for r in scored)
    fp = sum(counts[r["finding"]].fp for r in scored)
    fn = sum(counts[r["finding"]].fn for r in scored)
    micro = Counts.prf(tp, fp, fn)
    macro_f1 = sum(r["f1"] for r in scored) / len(scored) if scored else 0.0
    return {"reports": used, "rows": rows, "micro": {"precision": micro[0], "recall": micro[1], "f1": micro[2]},
            "macro_f1": macro_f1, "errors": errors}


def markdown(result: dict) -> str:
    lines = [
        f"Labeler vs manual MeSH tags, {result['reports']} IU reports (predicted = positive or uncertain)",
        "",
        "| finding | tagged | predicted | precision | recall | F1 | F1 (positive only) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['finding']} | {r['tagged']} | {r['predicted']} | {r['precision']:.3f} | {r['recall']:.3f} "
                     f"| {r['f1']:.3f} | {r['f1_strict']:.3f} |")
    m = result["micro"]
    lines.append(f"| **micro (pathologies)** | | | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | |")
    lines.append(f"| **macro (pathologies)** | | | | | {result['macro_f1']:.3f} | |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.eval.labeler_agreement", description=__doc__.split("\n")[0])
    ap.add_argument("--reports", type=Path, default=None, help="iu_xray_reports.jsonl (default: shared data)")
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    ap.add_argument("--errors", default=None, help="print disagreements for this finding")
    ap.add_argument("--limit", type=int, default=30)
    args = ap.parse_args(argv)
    path = args.reports or default_iu_path()
    if not path.is_file():
        print(f"error: {path} not found", file=sys.stderr)
        return 2
    result = measure(load_iu_reports(path))
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps({k: v for k, v in result.items() if k != "errors"}, indent=2))
    if args.errors:
        for e in result["errors"].get(args.errors, [])[: args.limit]:
            print(f"\n[{e['kind']}] {e['uid']} {e['mesh']}\n  {e['text']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
