"""Clinical efficacy of generated reports: findings extracted by our labeler, compared with the reference's.

Convention (stated in every output): a finding counts as present only when the labeler says positive (1);
negative (0), uncertain (-1) and not mentioned are all "not present". Per-finding precision/recall/F1
over the 14 CheXpert findings, micro (pooled counts) and macro (mean of per-finding P/R/F1 over the findings
that occur in the references, so systems scored on one reference set share the same denominator). Hallucination: the share of studies whose reference says
No Finding where the generated report asserts any pathology.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engines.labeler.findings import FINDINGS, PATHOLOGIES
from engines.labeler.label import label_report

CONVENTION = "present = labeler positive (1); negative, uncertain and unmentioned = absent"


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def clinical_efficacy_from_labels(gen_labels: Sequence[dict[str, int]], ref_labels: Sequence[dict[str, int]]) -> dict:
    if len(gen_labels) != len(ref_labels):
        raise ValueError(f"{len(gen_labels)} generated vs {len(ref_labels)} reference label sets")
    per: dict[str, dict] = {}
    tp_all = fp_all = fn_all = 0
    for f in FINDINGS:
        tp = sum(g.get(f) == 1 and r.get(f) == 1 for g, r in zip(gen_labels, ref_labels, strict=True))
        fp = sum(g.get(f) == 1 and r.get(f) != 1 for g, r in zip(gen_labels, ref_labels, strict=True))
        fn = sum(g.get(f) != 1 and r.get(f) == 1 for g, r in zip(gen_labels, ref_labels, strict=True))
        p, r_, f1 = _prf(tp, fp, fn)
        per[f] = {"precision": p, "recall": r_, "f1": f1, "support": tp + fn, "predicted": tp + fp}
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
    micro = dict(zip(("precision", "recall", "f1"), _prf(tp_all, fp_all, fn_all), strict=True))
    active = [f for f in FINDINGS if per[f]["support"]]
    macro = {
        k: (sum(per[f][k] for f in active) / len(active) if active else 0.0) for k in ("precision", "recall", "f1")
    }
    normal = [i for i, r in enumerate(ref_labels) if r.get("No Finding") == 1]
    hallucinated = [i for i in normal if any(gen_labels[i].get(p) == 1 for p in PATHOLOGIES)]
    return {
        "per_finding": per,
        "micro": micro,
        "macro": macro,
        "macro_over": active,
        "hallucination_rate": (len(hallucinated) / len(normal)) if normal else None,
        "reference_normal_studies": len(normal),
        "convention": CONVENTION,
    }


def clinical_efficacy(
    generated: Sequence[str], references: Sequence[str], labeler: Callable[[str], object] = label_report
) -> dict:
    """Label both sides with ``labeler`` (default: engines.labeler.label_report) and compare."""
    gen = [dict(labeler(t).findings) for t in generated]  # type: ignore[attr-defined]
    ref = [dict(labeler(t).findings) for t in references]  # type: ignore[attr-defined]
    return clinical_efficacy_from_labels(gen, ref)
