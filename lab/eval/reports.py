"""One call that scores generated reports against references: language metrics + clinical efficacy."""

from __future__ import annotations

from collections.abc import Sequence

from engines.labeler.findings import FINDINGS
from lab.eval.clinical import clinical_efficacy
from lab.eval.nlg import corpus_nlg_scores

NLG_KEYS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


def evaluate_reports(
    generated: Sequence[str],
    references: Sequence[str],
    *,
    tokenizer: str = "ptb",
    meteor: bool = True,
    nlg: bool = True,
) -> dict:
    """Scores of ``generated[i]`` against ``references[i]``.

    ``{"n": ..., "nlg": {BLEU-1..4, METEOR, ROUGE-L, CIDEr, tokenizer, notes}, "clinical": {per_finding,
    micro, macro, hallucination_rate, convention, ...}}``. ``nlg=False`` skips the language metrics
    (no Java needed)."""
    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} generated vs {len(references)} reference reports")
    if not generated:
        raise ValueError("no reports to score")
    out: dict = {"n": len(generated)}
    out["nlg"] = corpus_nlg_scores(generated, references, tokenizer=tokenizer, meteor=meteor) if nlg else None
    out["clinical"] = clinical_efficacy(generated, references)
    return out


def _fmt(v: object) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def summary_row(result: dict) -> dict[str, object]:
    nlg = result.get("nlg") or {}
    c = result["clinical"]
    row: dict[str, object] = {k: nlg.get(k) for k in NLG_KEYS}
    row.update(
        {
            "CE-P (micro)": c["micro"]["precision"],
            "CE-R (micro)": c["micro"]["recall"],
            "CE-F1 (micro)": c["micro"]["f1"],
            "CE-F1 (macro)": c["macro"]["f1"],
            "halluc. rate": c["hallucination_rate"],
        }
    )
    return row


def markdown_table(results: dict[str, dict], title: str = "", notes: Sequence[str] = ()) -> str:
    """Summary table with one row per named result, then per-finding F1, then the notes."""
    names = list(results)
    rows = {n: summary_row(results[n]) for n in names}
    cols = list(next(iter(rows.values())))
    lines = [f"## {title}", ""] if title else []
    lines += ["| system | n | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for n in names:
        lines.append(f"| {n} | {results[n]['n']} | " + " | ".join(_fmt(rows[n][c]) for c in cols) + " |")
    lines += ["", "Clinical F1 per finding (support = reference positives):", ""]
    lines += ["| finding | support | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    first = results[names[0]]["clinical"]["per_finding"]
    for f in FINDINGS:
        lines.append(f"| {f} | {first[f]['support']} | " + " | ".join(_fmt(results[n]["clinical"]["per_finding"][f]["f1"]) for n in names) + " |")
    conv = results[names[0]]["clinical"]["convention"]
    tok = (results[names[0]].get("nlg") or {}).get("tokenizer", "n/a")
    lines += ["", f"- clinical convention: {conv}; micro pools counts over the 14 findings, macro averages over"
              " the findings with reference positives",
              f"- language metrics: pycocoevalcap 1.2 corpus level (BLEU-1..4, METEOR 1.5, ROUGE-L, CIDEr-D), tokenizer: {tok}",
              "- hallucination rate: share of reference-normal studies (No Finding) whose generated report asserts"
              " any pathology"]
    for r in results.values():
        for note in (r.get("nlg") or {}).get("notes", []):
            lines.append(f"- {note}")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines)
