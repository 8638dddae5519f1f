"""`radstation-eval drafting`: sentence-level drafts beside free token-level drafts and the baselines, in one
table with bootstrap 95% intervals.

    radstation-eval drafting --split val [--model DIR] [--limit N] [--modes sentences free]
                             [--drafts free=FILE.jsonl] [--reps 1000] [--out eval-results]

For every image of the split (references composed from real IU sentences, lab.data.paired, seed 0) it
drafts through MedimPipeline.draft_report, the path the app and the worker use (`sentences` with the
curated train images as the similar-case index, `free` with the shipped sampling), resuming from the JSONL
files already in --out; then scores them with the most-common report and nearest-neighbour retrieval:
- clinical: CE-F1 micro and macro, hallucination on reference-normal studies (lab.eval.clinical);
- consistency: share of reports in which the labeler finds a finding present in one sentence and absent in
  another (lab.eval.consistency), with the same rate on the real IU reports as the reference;
- fluency: share of sentences within difflib ratio 0.9 of a real IU sentence, and their median trigram
  perplexity (lab.eval.fluency; real held-out IU reports as the reference);
and the paired interval of each system's difference to nearest neighbour.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from engines.labeler.findings import PATHOLOGIES
from engines.labeler.label import label_report
from lab.eval.consistency import inconsistency_flags
from lab.eval.draft_bootstrap import bootstrap, clinical_point, label_matrix, paired_difference
from lab.eval.fluency import SentenceCorpus, fluency
from lab.eval.jsonl import read_reports, write_jsonl

SYSTEM_NAMES = {"sentences": "sentence-level (shipped default)", "free": "free text (token-level)"}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def dev_case_index(pipe, train: Sequence, cache: Path, progress: Callable[[int, int], None] | None = None):
    """CaseIndex of the curated train images (their composed reports) by the embedding the pipeline's sentence
    drafts ground on; the embeddings are cached per weights hash and embedding."""
    from engines.similar import CaseIndex, CaseRecord
    from engines.similar.embeddings import index_name

    kind = pipe.decode_settings.case_embedding
    ids = [s.image_id for s in train]
    emb = None
    if cache.is_file():
        z = np.load(cache)
        if list(z["ids"]) == ids:
            emb = z["emb"]
    if emb is None:
        rows = []
        for i, s in enumerate(train):
            rows.append(pipe.embed([np.asarray(s.load_image())], kind)[0])
            if progress is not None:
                progress(i + 1, len(train))
        emb = np.stack(rows).astype(np.float32)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, ids=np.array(ids), emb=emb)
    index = CaseIndex(emb.shape[1], index_name(kind))
    index.add([CaseRecord(s.image_id, s.report_findings, s.report_impression, "dev", {}, str(s.image_path or ""), s.image_id)
               for s in train], emb)
    return index


def draft_split(pipe, queries: Sequence, mode: str, path: Path, draft_seed: int = 0) -> dict[str, str]:
    """Draft every query not already in `path` (JSONL, appended as it goes) with the sampler's seed `draft_seed`;
    returns id -> text."""
    done = read_reports(path) if path.is_file() else {}
    todo = [s for s in queries if s.image_id not in done]
    t0 = time.perf_counter()
    with path.open("a", encoding="utf-8") as fh:
        for i, s in enumerate(todo):
            res = pipe.draft_report([np.asarray(s.load_image())], mode=mode, seed=draft_seed)
            row = {"id": s.image_id, "text": " ".join(x for x in (res.findings_text, res.impression_text) if x),
                   "findings": res.findings_text, "impression": res.impression_text,
                   "elapsed_s": round(res.elapsed_s, 3)}
            if res.sentences is not None:
                row["sentences"] = [{k: c[k] for k in ("text", "slot", "confidence", "sources")}
                                    for c in res.sentences]
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            done[s.image_id] = row["text"]
            if (i + 1) % 10 == 0 or i + 1 == len(todo):
                _log(f"{mode}: {i + 1}/{len(todo)} drafted ({(time.perf_counter() - t0) / (i + 1):.2f} s each)")
    return done


def score_systems(systems: dict[str, list], references: list[str], corpus: SentenceCorpus,
                  reference_name: str, reps: int = 1000) -> dict:
    """Point values, 95% intervals and paired differences to `reference_name` for every system. A system is
    its report texts, or its stated findings ({finding: 1}) when only those are known (no text metrics)."""
    ref = label_matrix([label_report(t).findings for t in references])
    n = len(references)
    out: dict = {}
    reps_by: dict[str, list] = {}
    for name, texts in systems.items():
        if texts and isinstance(texts[0], dict):
            gen = label_matrix(texts)
            incons = np.full(n, np.nan)
            flu = {"sentences": 0, "median_perplexity": float("nan"), "per_report": [(np.nan, np.nan, [])] * n}
        else:
            gen = label_matrix([label_report(t).findings for t in texts])
            incons = np.array(inconsistency_flags(texts), dtype=float)
            flu = fluency(texts, corpus)
        near = np.array([a for a, _, _ in flu["per_report"]], dtype=float)
        count = np.array([b for _, b, _ in flu["per_report"]], dtype=float)

        def stat(idx: np.ndarray, gen=gen, incons=incons, near=near, count=count) -> dict[str, float]:
            d = clinical_point(gen, ref, idx)
            d["inconsistent"] = float(incons[idx].mean())
            d["near_real"] = float(near[idx].sum() / max(count[idx].sum(), 1)) if not np.isnan(count).any() \
                else float("nan")
            return d

        point, ci, rep = bootstrap(stat, n, reps)
        reps_by[name] = rep
        out[name] = {"n": n, "point": point, "ci": ci, "sentences": flu["sentences"],
                     "median_perplexity": flu["median_perplexity"]}
    for name in systems:
        if name != reference_name:
            out[name]["minus_" + reference_name] = paired_difference(reps_by[name], reps_by[reference_name])
    return out


def real_report_reference(iu_texts: list[str], seed: int = 0) -> dict:
    """Consistency over all real IU reports; fluency of a held-out tenth against a corpus of the rest."""
    incons = inconsistency_flags(iu_texts)
    rng = random.Random(seed)
    order = list(range(len(iu_texts)))
    rng.shuffle(order)
    held = set(order[: len(order) // 10])
    corpus = SentenceCorpus.from_reports(t for i, t in enumerate(iu_texts) if i not in held)
    flu = fluency([iu_texts[i] for i in sorted(held)], corpus)
    return {"n": len(iu_texts), "inconsistent": float(np.mean(incons)), "held_out": len(held),
            "near_real": flu["near_real_share"], "median_perplexity": flu["median_perplexity"]}


def _fmt(point: float, ci: tuple[float, float] | None = None) -> str:
    if point is None or (isinstance(point, float) and np.isnan(point)):
        return "n/a"
    return f"{point:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def markdown(scores: dict, real: dict | None, split: str, notes: Sequence[str], reference_name: str) -> str:
    lines = [f"## Drafts on the {split} split (bootstrap 95% intervals, {notes[0]})", "",
             "| system | n | CE-F1 micro | CE-F1 macro | halluc. on normal | inconsistent reports | "
             "sentences near a real one | median sentence perplexity |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in scores.items():
        p, ci = r["point"], r["ci"]
        ppl = r["median_perplexity"]
        lines.append(f"| {name} | {r['n']} | {_fmt(p['micro'], ci['micro'])} | {_fmt(p['macro'], ci['macro'])} | "
                     f"{_fmt(p['halluc'], ci['halluc'])} | {_fmt(p['inconsistent'], ci['inconsistent'])} | "
                     f"{_fmt(p['near_real'], ci['near_real'])} | {'n/a' if ppl != ppl else f'{ppl:.1f}'} |")
    if real is not None:
        lines.append(f"| real IU reports (reference) | {real['n']} | - | - | - | {real['inconsistent']:.3f} | "
                     f"{real['near_real']:.3f} (held-out {real['held_out']}) | {real['median_perplexity']:.1f} |")
    lines += ["", f"Paired difference to {reference_name} (95% interval; > 0 means higher):", "",
              "| system | CE-F1 micro | CE-F1 macro | halluc. on normal | inconsistent |", "|---|---:|---:|---:|---:|"]
    for name, r in scores.items():
        d = r.get("minus_" + reference_name)
        if d:
            lines.append(f"| {name} | " + " | ".join(f"[{d[k][0]:+.3f}, {d[k][1]:+.3f}]"
                                                   for k in ("micro", "macro", "halluc", "inconsistent")) + " |")
    lines += [""] + [f"- {n}" for n in notes[1:]]
    return "\n".join(lines)


def stated_findings(pipe, queries: Sequence, features: Path) -> list[dict[str, int]]:
    """What the sentence drafts of `queries` state present, from their study reading alone (no text is written):
    the finding reader's probabilities and the image-token embeddings come from `features` (ids, probs, emb,
    names, as lab.eval.tune_sentences caches them from the same pipeline functions)."""
    z = np.load(features)
    pos = {str(i): k for k, i in enumerate(z["ids"])}
    names = [str(x) for x in z["names"]]
    s = pipe.decode_settings
    out = []
    for q in queries:
        if q.image_id not in pos:
            raise ValueError(f"{features} has no features of {q.image_id}")
        k = pos[q.image_id]
        reader = dict(zip(names, map(float, z["probs"][k]), strict=True))
        query = z["emb"][k] if s.case_embedding == "image-tokens" else pipe.embed([np.asarray(q.load_image())],
                                                                                   s.case_embedding)[0]
        reading, _ = pipe.study_reading([], s, reader=reader, case_query=query)
        stated = {f: 1 for f in reading.present}
        if not set(stated) & set(PATHOLOGIES):  # as the labeler reads a draft that states no pathology
            stated["No Finding"] = 1
        out.append(stated)
    return out


def run(split: str = "val", *, model: Path | None = None, root: Path | None = None, out: Path = Path("eval-results"),
        limit: int | None = None, seed: int = 0, modes: Sequence[str] = ("sentences", "free"),
        drafts: dict[str, Path] | None = None, reps: int = 1000, reading_features: Path | None = None,
        reading_limit: int | None = None, case_index: bool = True, sentence_bank: Path | None = None,
        runtime: str = "torch", draft_seed: int = 0) -> dict:
    """Draft `split` through the product's public path and score it beside the baselines. `case_index=False`
    drafts as a fresh installation does (no development index of similar cases: the reader reads alone).
    `sentence_bank` replaces the shipped (project-authored) bank, e.g. by the IU one for development
    (`python -m lab.build.sentence_bank iu`); its drafts are kept apart from the shipped bank's. `runtime` how the
    backbone runs (engines.pipeline.RUNTIMES, e.g. onnx-int8); other runtimes' drafts are kept apart from torch's.
    `draft_seed` the sampler's seed of every draft (default 0, as the product drafts); another seed's drafts are
    kept apart too (how far two samples of the same engine are apart: the noise a change is judged against)."""
    from engines.default_weights import DEFAULT_WEIGHTS
    from engines.pipeline import MedimPipeline
    from lab.data.cxr import load_cxr
    from lab.data.iu import load_iu_reports
    from lab.data.paired import SentenceBank, pair_reports
    from lab.eval.baselines import baseline_reports, eval_text

    if split == "train":
        raise ValueError("drafts are scored on a held-out split (val or test), not on train")
    bank_tag, bank_sha = "", None
    if sentence_bank is not None:
        sentence_bank = Path(sentence_bank)
        if sentence_bank.is_dir():
            sentence_bank = sentence_bank / "sentence_bank.json"
        if not sentence_bank.is_file():
            raise FileNotFoundError(f"sentence bank {sentence_bank} does not exist "
                                    "(build one with python -m lab.build.sentence_bank)")
        bank_sha = hashlib.sha256(sentence_bank.read_bytes()).hexdigest()
        bank_tag = f"_bank-{bank_sha[:8]}"  # drafts of another bank never resume these
    out.mkdir(parents=True, exist_ok=True)
    iu_path = None if root is None else Path(root) / "text_only" / "iu_xray_reports.jsonl"
    ds = load_cxr(root, splits=("train", split))
    bank = SentenceBank.from_iu(iu_path)
    train = pair_reports(ds.by_split("train"), bank, seed=seed)
    all_queries = pair_reports(ds.by_split(split), bank, seed=seed)
    queries = all_queries[:limit]
    if not queries:
        raise ValueError(f"split {split!r} has no images here")
    _log(f"{len(queries)} {split} images, {len(train)} train images; baselines ...")
    rq = all_queries[:reading_limit] if reading_features is not None else queries
    widest = rq if len(rq) > len(queries) else queries  # both are prefixes of the split: one retrieval serves both
    base_all = baseline_reports(train, widest)
    ids = [s.image_id for s in queries]
    systems: dict[str, list[str]] = {}
    pipe = None
    for mode in modes:
        given = (drafts or {}).get(mode)
        if given is not None:
            got = read_reports(given)
        else:
            if pipe is None:
                pipe = MedimPipeline.from_pretrained(model or DEFAULT_WEIGHTS, device="cpu", runtime=runtime)
                if pipe.runtime != runtime:  # fell back: these drafts would not be the asked-for runtime's
                    raise RuntimeError(f"runtime {runtime} unavailable: {pipe.runtime_error}")
                if sentence_bank is not None:
                    pipe.bank_path, pipe._decoder = sentence_bank, None  # loaded (and checked) on first draft
                if "sentences" in modes and case_index:
                    pipe.case_index = dev_case_index(
                        pipe, train, out / f"embeddings_train_{pipe.weights_hash[:12]}_"
                                          f"{pipe.decode_settings.case_embedding}.npz",
                        lambda i, n: (i % 250 == 0 or i == n) and _log(f"embedding train images {i}/{n}"))
            got = draft_split(pipe, queries, mode,
                              out / f"drafts_{mode}_{split}{'' if case_index else '_no_case_index'}"
                                    f"{bank_tag if mode == 'sentences' else ''}"
                                    f"{'' if runtime == 'torch' else '_' + runtime}"
                                    f"{'' if draft_seed == 0 else f'_seed{draft_seed}'}.jsonl", draft_seed)
        missing = [i for i in ids if i not in got]
        if missing:
            raise ValueError(f"{mode} drafts lack {len(missing)} of the {split} images (e.g. {missing[0]})")
        name = SYSTEM_NAMES.get(mode, mode)
        if mode == "sentences" and sentence_bank is not None:
            name = f"sentence-level, bank {sentence_bank.parent.name}/{sentence_bank.name}"
        systems[name] = [got[i] for i in ids]
    nn_name = "nearest neighbour (32x32 cosine)"
    systems[nn_name] = base_all.generated[nn_name][:len(queries)]
    systems["most-common report"] = base_all.generated["most-common report"][:len(queries)]
    iu_texts = [r.text for r in load_iu_reports(iu_path) if r.text.strip()]
    _log("scoring ...")
    corpus = SentenceCorpus.from_reports(iu_texts)
    scores = score_systems(systems, [eval_text(s) for s in queries], corpus, nn_name, reps)
    real = real_report_reference(iu_texts, seed)
    notes = [f"{reps} resamples of the {len(queries)} studies",
             f"references: composed from real IU sentences matching each image's labels (lab.data.paired, "
             f"seed {seed}), not radiologists' reports of these images",
             ("sentence-level drafts draw on the curated train images as similar cases (their composed reports); "
              if case_index else "sentence-level drafts without a similar-case index (a fresh installation): the "
              "reader reads alone at its own CV-chosen thresholds; ")
             + "nearest neighbour retrieves the train report of the closest 32x32 image",
             ("sentence bank: the shipped project-authored one (resources/sentences)" if sentence_bank is None else
              f"sentence bank: {sentence_bank} (sha256 {bank_sha[:12]}), not the shipped one"),
             "the study reading is the finding reader's (engines.reader); settings chosen by CV on train folds "
             "over all sources and within NIH together, the answer rule included (lab.eval.tune_sentences)",
             "near-real share: difflib ratio >= 0.9 to a real IU sentence after lower-casing and stripping "
             "punctuation; perplexity: interpolated Kneser-Ney trigram of the IU sentences, leave-one-out for "
             "sentences in the corpus (trigram counts); real reports: a held-out tenth against the rest"]
    md = markdown(scores, real, split, notes, nn_name)
    nih = [i for i, s in enumerate(queries) if s.source.startswith("nih_")]
    if nih and len(nih) < len(queries):  # issue 28: within one source the collection shortcut carries nothing
        sub = {k: [v[i] for i in nih] for k, v in systems.items()}
        nscores = score_systems(sub, [eval_text(queries[i]) for i in nih], corpus, nn_name, reps)
        md += "\n\n" + markdown(nscores, None, f"{split} split, NIH images only",
                                 [f"{reps} resamples of the {len(nih)} NIH studies"], nn_name)
        scores["nih_only"] = nscores
    if reading_features is not None:  # what the drafts state, on more images than were drafted
        if pipe is None:
            pipe = MedimPipeline.from_pretrained(model or DEFAULT_WEIGHTS, device="cpu")
            pipe.case_index = dev_case_index(
                pipe, train, out / f"embeddings_train_{pipe.weights_hash[:12]}_{pipe.decode_settings.case_embedding}.npz")
        rsys = {"sentence-level: findings its reading states (no text written)": stated_findings(pipe, rq,
                                                                                                reading_features),
                nn_name: base_all.generated[nn_name][:len(rq)],
                "most-common report": base_all.generated["most-common report"][:len(rq)]}
        rscores = score_systems(rsys, [eval_text(s) for s in rq], corpus, nn_name, reps)
        md += "\n\n" + markdown(rscores, None, split, [notes[0].replace(str(len(queries)), str(len(rq))),
                                                        "clinical columns only: the findings the sentence drafts' "
                                                        "study reading states present (what each draft's slots are "
                                                        "filled to state), computed from cached reader outputs"],
                                 nn_name)
        scores["reading_only"] = rscores
    payload = {"split": split, "n": len(queries), "scores": scores, "real_iu": real, "notes": notes,
               "model": str(model or DEFAULT_WEIGHTS), "runtime": runtime, "draft_seed": draft_seed, "weights_sha256": getattr(pipe, "weights_hash", None),
               "sentence_bank": None if sentence_bank is None else str(sentence_bank), "sentence_bank_sha256": bank_sha,
               "decode_settings": pipe.decode_settings.to_json() if pipe is not None else None}
    (out / f"drafting_{split}.json").write_text(json.dumps(payload, indent=2, default=str))
    (out / f"drafting_{split}.md").write_text(md + "\n")
    write_jsonl(out / f"references_{split}.jsonl", [{"id": i, "text": t} for i, t in
                                                     zip(ids, [eval_text(s) for s in queries], strict=True)])
    print(md)
    return payload
