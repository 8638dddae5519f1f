"""`radstation-eval`: score generated reports (or VQA answers) against references; compute baselines.

    radstation-eval score GENERATED.jsonl REFERENCES.jsonl [--out DIR]
    radstation-eval GENERATED.jsonl REFERENCES.jsonl            (same as score)
    radstation-eval baselines --split val [--seed 0] [--out DIR]
    radstation-eval references --split val [--seed 0] [--out DIR]  (only the reference JSONL, no scoring)
    radstation-eval vqa GENERATED.jsonl REFERENCES.jsonl        (answers; kind closed/open in the reference)
    radstation-eval qa-references --split val [--seed 0]        (rule-derived questions of a curated split)
    radstation-eval drafting --split val [--limit N]            (sentence-level vs free drafts vs baselines, with
                                                                 bootstrap 95% intervals; lab.eval.drafting)
    radstation-eval scope fit|measure [--model DIR]             (input gate: lab.eval.scope_cli)
    radstation-eval calibration|questions [--split val]          (reading: lab.eval.reading_cli)
    radstation-eval uncertain-words --fit-train OOF.npz         (the editor's doubtful-sentence threshold:
                                                                 lab.eval.uncertain_sentences)
    radstation-eval no-rule --fit-train OOF.npz [--write]       (per-finding "no" rule against a miss rate)

Report JSONL lines: {"id": ..., "text": ...} or {"id": ..., "findings": ..., "impression": ...}.
Prints a markdown table and writes <out>/<name>.json and <out>/<name>.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from lab.eval.jsonl import EvalInputError, read_jsonl, read_reports, write_jsonl
from lab.eval.reports import evaluate_reports, markdown_table
from lab.eval.vqa import vqa_scores


def _write(out: Path, name: str, payload: dict, md: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))
    (out / f"{name}.md").write_text(md + "\n")
    print(f"\nwritten: {out / (name + '.json')} and {out / (name + '.md')}", file=sys.stderr)


def _pair(gen: dict[str, str], ref: dict[str, str]) -> tuple[list[str], list[str], list[str], list[str]]:
    ids = [i for i in ref if i in gen]
    if not ids:
        raise EvalInputError("generated and reference files share no id")
    missing = [i for i in ref if i not in gen]
    return ids, [gen[i] for i in ids], [ref[i] for i in ids], missing


def cmd_score(args: argparse.Namespace) -> int:
    gen, ref = read_reports(args.generated), read_reports(args.references)
    ids, g, r, missing = _pair(gen, ref)
    notes = [f"{len(missing)} reference id(s) have no generated report and are not scored"] if missing else []
    result = evaluate_reports(g, r, tokenizer=args.tokenizer, meteor=not args.no_meteor, nlg=not args.no_nlg)
    result["ids"] = ids
    md = markdown_table({Path(args.generated).stem: result}, "Report generation", notes)
    print(md)
    _write(Path(args.out), args.name or "eval", {"result": result, "notes": notes}, md)
    return 0


def cmd_baselines(args: argparse.Namespace) -> int:
    from lab.eval.baselines import curated_baselines

    def progress(stage: str, i: int, n: int) -> None:
        if i == n or i % 250 == 0:
            print(f"{stage}: {i}/{n}", file=sys.stderr)

    reports, notes = curated_baselines(args.split, seed=args.seed, root=args.data, progress=progress)
    results = {}
    for name, texts in reports.generated.items():
        print(f"scoring {name} ...", file=sys.stderr)
        results[name] = evaluate_reports(texts, reports.references, tokenizer=args.tokenizer,
                                         meteor=not args.no_meteor, nlg=not args.no_nlg)
    md = markdown_table(results, f"Baselines on the {args.split} split", notes)
    from lab.eval.baselines import vqa_baselines

    vqa = vqa_baselines(reports.train, reports.queries, reports.neighbour_ids)
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    md += "\n\nVQA on the rule-derived questions (engines.qa) of the same images:\n\n"
    md += "| system | closed accuracy | n closed | open token F1 | n open |\n|---|---:|---:|---:|---:|\n"
    md += "\n".join(f"| {n} | {fmt(r['closed_accuracy'])} | {r['n_closed']} | {fmt(r['open_token_f1'])} | {r['n_open']} |"
                     for n, r in vqa.items())
    print(md)
    out = Path(args.out)
    _write(out, f"baselines_{args.split}", {"results": results, "vqa": vqa, "notes": notes, "split": args.split,
                                            "seed": args.seed}, md)
    write_jsonl(out / f"references_{args.split}.jsonl", [{"id": i, "text": t} for i, t in zip(reports.ids, reports.references, strict=True)])
    for name, texts in reports.generated.items():
        slug = name.split(" (")[0].replace(" ", "_").replace("-", "_")
        write_jsonl(out / f"baseline_{slug}_{args.split}.jsonl", [{"id": i, "text": t} for i, t in zip(reports.ids, texts, strict=True)])
    return 0


def cmd_references(args: argparse.Namespace) -> int:
    """The reference reports of a curated split as JSONL (composed, seeded), for scoring a model's drafts."""
    from lab.data.cxr import load_cxr
    from lab.data.paired import SentenceBank, pair_reports
    from lab.eval.baselines import eval_text

    ds = load_cxr(args.data, splits=(args.split,))
    bank = SentenceBank.from_iu(None if args.data is None else Path(args.data) / "text_only" / "iu_xray_reports.jsonl")
    paired = pair_reports(ds, bank, seed=args.seed)
    path = Path(args.out) / f"references_{args.split}.jsonl"
    write_jsonl(path, [{"id": s.image_id, "text": eval_text(s), "findings": s.report_findings,
                        "impression": s.report_impression, "report_is_real": s.report_is_real} for s in paired])
    composed = sum(not s.report_is_real for s in paired)
    print(f"{path}: {len(paired)} references ({composed} composed from IU sentences, seed {args.seed}); "
          f"{len(ds.problems)} manifest rows skipped")
    return 0


def cmd_qa_references(args: argparse.Namespace) -> int:
    """Rule-derived VQA pairs of a curated split (engines.qa), ids "<image_id>#<n>"."""
    from lab.data.cxr import load_cxr
    from lab.data.paired import SentenceBank, pair_reports
    from lab.data.qa import derive_qa

    ds = load_cxr(args.data, splits=(args.split,))
    bank = SentenceBank.from_iu(None if args.data is None else Path(args.data) / "text_only" / "iu_xray_reports.jsonl")
    rows = []
    for s in pair_reports(ds, bank, seed=args.seed):
        for n, qa in enumerate(derive_qa(s)):
            rows.append({"id": f"{s.image_id}#{n}", "image_id": s.image_id, "question": qa.question,
                         "answer": qa.answer, "kind": qa.kind, "qtype": qa.qtype, "finding": qa.finding})
    path = Path(args.out) / f"qa_{args.split}.jsonl"
    write_jsonl(path, rows)
    print(f"{path}: {len(rows)} questions on {len(ds)} images "
          f"({sum(r['kind'] == 'closed' for r in rows)} closed, {sum(r['kind'] == 'open' for r in rows)} open)")
    return 0


def cmd_vqa(args: argparse.Namespace) -> int:
    gen = {str(o["id"]): str(o.get("answer", "")) for o in read_jsonl(args.generated)}
    refs = read_jsonl(args.references)
    rows = [o for o in refs if str(o["id"]) in gen]
    if not rows:
        raise EvalInputError("generated and reference answers share no id")
    result = vqa_scores([gen[str(o["id"])] for o in rows], [str(o.get("answer", "")) for o in rows],
                        [str(o.get("kind", "closed")) for o in rows])
    missing = len(refs) - len(rows)
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    md = "\n".join([
        "| closed accuracy | n closed | open token F1 | n open |", "|---:|---:|---:|---:|",
        f"| {fmt(result['closed_accuracy'])} | {result['n_closed']} | {fmt(result['open_token_f1'])} | {result['n_open']} |",
    ] + ([f"\n- {missing} reference question(s) unanswered, not scored"] if missing else []))
    print(md)
    _write(Path(args.out), args.name or "vqa", {"result": result, "unanswered": missing}, md)
    return 0


def cmd_drafting(args: argparse.Namespace) -> int:
    """Sentence-level and free drafts beside the baselines, with bootstrap intervals (lab.eval.drafting)."""
    import torch

    from lab.eval.drafting import run

    torch.set_num_threads(max(int(args.threads), 1))
    given = {}
    for item in args.drafts or []:
        mode, _, path = item.partition("=")
        if not path:
            raise EvalInputError(f"--drafts takes MODE=FILE, got {item!r}")
        given[mode] = Path(path)
    run(args.split, model=args.model, root=args.data, out=Path(args.out), limit=args.limit, seed=args.seed,
        modes=args.modes, drafts=given, reps=args.reps, reading_features=args.reading_features,
        reading_limit=args.reading_limit, case_index=not args.no_case_index, sentence_bank=args.sentence_bank,
        runtime=args.runtime, draft_seed=args.draft_seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="radstation-eval", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="command")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--out", default="eval-results", help="folder for the JSON and markdown (default: eval-results)")
        sp.add_argument("--tokenizer", choices=("ptb", "simple"), default="ptb", help="PTB (Java) or in-process")
        sp.add_argument("--no-meteor", action="store_true", help="skip METEOR (saves the Java start-up)")
        sp.add_argument("--no-nlg", action="store_true", help="clinical metrics only")

    s = sub.add_parser("score", help="score generated reports against references")
    s.add_argument("generated", type=Path)
    s.add_argument("references", type=Path)
    s.add_argument("--name", default=None, help="output file stem (default: eval)")
    common(s)
    s.set_defaults(func=cmd_score)

    b = sub.add_parser("baselines", help="most-common, always-normal and nearest-neighbour baselines")
    b.add_argument("--split", default="val", choices=("val", "test"))
    b.add_argument("--seed", type=int, default=0, help="seed of the composed reports")
    b.add_argument("--data", type=Path, default=None, help="curated data folder (default: ../shared/data/cxr)")
    common(b)
    b.set_defaults(func=cmd_baselines)

    r = sub.add_parser("references", help="write the (composed) reference reports of a curated split")
    r.add_argument("--split", default="val", choices=("train", "val", "test"))
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--data", type=Path, default=None)
    r.add_argument("--out", default="eval-results")
    r.set_defaults(func=cmd_references)

    q = sub.add_parser("qa-references", help="write the rule-derived VQA pairs of a curated split")
    q.add_argument("--split", default="val", choices=("train", "val", "test"))
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--data", type=Path, default=None)
    q.add_argument("--out", default="eval-results")
    q.set_defaults(func=cmd_qa_references)

    d = sub.add_parser("drafting", help="sentence-level vs free drafts vs baselines, with bootstrap intervals")
    d.add_argument("--split", default="val", choices=("val", "test"))
    d.add_argument("--model", type=Path, default=None, help="weights folder (default: the shipped medim-small)")
    d.add_argument("--data", type=Path, default=None, help="curated data folder (default: ../shared/data/cxr)")
    d.add_argument("--limit", type=int, default=None, help="first N images only")
    d.add_argument("--seed", type=int, default=0, help="seed of the composed reports")
    d.add_argument("--modes", nargs="+", default=["sentences", "free"], choices=("sentences", "free"))
    d.add_argument("--drafts", nargs="*", help="MODE=FILE: use these drafts instead of drafting (JSONL)")
    d.add_argument("--reps", type=int, default=1000, help="bootstrap resamples")
    d.add_argument("--threads", type=int, default=2, help="torch threads")
    d.add_argument("--reading-features", type=Path, default=None,
                   help="cached reader outputs (lab.eval.tune_sentences --features): also score what sentence "
                        "drafts state on --reading-limit images without writing them")
    d.add_argument("--reading-limit", type=int, default=None)
    d.add_argument("--no-case-index", action="store_true",
                   help="draft as a fresh installation does: no development index of similar cases (reader alone)")
    d.add_argument("--sentence-bank", type=Path, default=None,
                   help="a sentence bank (file or folder) instead of the shipped project-authored one, e.g. the IU "
                        "bank for development: python -m lab.build.sentence_bank iu")
    d.add_argument("--runtime", default="torch", choices=("torch", "onnx", "onnx-int8", "compiled"),
                   help="how the engine's backbone runs (engines.pipeline.RUNTIMES; default torch, the reference)")
    d.add_argument("--draft-seed", type=int, default=0,
                   help="the sampler's seed of every draft (default 0, as the product drafts)")
    d.add_argument("--out", default="eval-results")
    d.set_defaults(func=cmd_drafting)

    v = sub.add_parser("vqa", help="score VQA answers (closed accuracy, open token F1)")
    v.add_argument("generated", type=Path)
    v.add_argument("references", type=Path)
    v.add_argument("--name", default=None)
    v.add_argument("--out", default="eval-results")
    v.set_defaults(func=cmd_vqa)

    from lab.eval.no_rule import register as register_no_rule
    from lab.eval.reading_cli import register as register_reading
    from lab.eval.scope_cli import register as register_scope
    from lab.eval.uncertain_sentences import register as register_uncertain

    register_scope(sub)
    register_reading(sub)
    register_uncertain(sub)
    register_no_rule(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] not in ("score", "baselines", "references", "qa-references", "vqa", "drafting", "scope",
                                "calibration", "questions", "uncertain-words", "no-rule", "-h",
                                "--help"):
        argv = ["score", *argv]
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (EvalInputError, ValueError, FileNotFoundError) as exc:
        print(f"radstation-eval: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("radstation-eval: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
