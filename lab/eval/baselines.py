"""The bars a report generator must beat, computed on the same split by the same scorer.

- most-common report: the modal training report: among training studies with the most frequent set of
  positive findings, the report built from the most frequent sentences (composed reports are all worded
  differently, so "most frequent text" would be arbitrary);
- always-normal report: the same, restricted to training studies labelled No Finding;
- nearest neighbour: the training report of the training image closest to the query image by cosine
  similarity of a 32x32 box-downsampled, mean-centred, unit-norm pixel embedding.

On the curated set no image has a real report, so training and reference reports are the composed ones
(lab.data.paired, seeded): the scores measure agreement with label-derived text, not with
radiologists' reports, and the output says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.data.sample import Sample
from engines.labeler.findings import PATHOLOGIES
from engines.labeler.label import split_sentences
from engines.similar.embeddings import pixels32

EMBED_SIZE = 32


def image_embedding(image: np.ndarray, size: int = EMBED_SIZE) -> np.ndarray:
    """float32 vector (size*size): box-downsampled pixels, mean removed, unit L2 norm (the same function the
    engine's "pixels32" case embedding uses, engines.similar.embeddings)."""
    return pixels32(image, size)


def embed_samples(samples: Sequence[Sample], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    out = np.zeros((len(samples), EMBED_SIZE * EMBED_SIZE), dtype=np.float32)
    for i, s in enumerate(samples):
        out[i] = image_embedding(s.load_image())
        if progress is not None:
            progress(i + 1, len(samples))
    return out


def nearest_neighbours(train_emb: np.ndarray, query_emb: np.ndarray) -> np.ndarray:
    """Index of the most cosine-similar training row for each query row (embeddings are unit norm)."""
    if len(train_emb) == 0:
        raise ValueError("no training images to retrieve from")
    return np.argmax(query_emb @ train_emb.T, axis=1)


def eval_text(s: Sample) -> str:
    """The text that is scored: findings then impression, without section headers (headers would be free
    n-gram matches for every system)."""
    return " ".join(t.strip() for t in (s.report_findings, s.report_impression) if t.strip())


def _positives(s: Sample) -> frozenset[str]:
    return frozenset(f for f in PATHOLOGIES if s.findings.get(f) == 1)


def modal_report(samples: Sequence[Sample]) -> str:
    """The report (of ``samples``) whose sentences are, on average, the most frequent among them."""
    texts = [eval_text(s) for s in samples if s.has_report]
    if not texts:
        raise ValueError("no training reports")
    sents = [[t[a:b].strip().lower() for a, b in split_sentences(t)] for t in texts]
    df = Counter(x for ss in sents for x in set(ss))
    scores = [sum(df[x] for x in ss) / max(len(ss), 1) for ss in sents]
    return texts[int(np.argmax(scores))]


def most_common_report(train: Sequence[Sample]) -> str:
    groups = Counter(_positives(s) for s in train if s.has_report)
    if not groups:
        raise ValueError("no training reports")
    top = groups.most_common(1)[0][0]
    return modal_report([s for s in train if _positives(s) == top])


def always_normal_report(train: Sequence[Sample]) -> str:
    normal = [s for s in train if s.findings.get("No Finding") == 1 and s.has_report]
    return modal_report(normal or list(train))


@dataclass
class BaselineReports:
    """Generated texts per baseline, aligned with ``references`` and ``ids``; the samples they came from."""

    ids: list[str]
    references: list[str]
    generated: dict[str, list[str]]
    neighbour_ids: list[str]
    train: Sequence[Sample] = ()
    queries: Sequence[Sample] = ()


def baseline_reports(
    train: Sequence[Sample], queries: Sequence[Sample], progress: Callable[[str, int, int], None] | None = None
) -> BaselineReports:
    """All three baselines for ``queries`` (which must carry their reference report)."""
    common = most_common_report(train)
    normal = always_normal_report(train)
    tr = [s for s in train if s.has_report]
    train_emb = embed_samples(tr, (lambda i, n: progress("embedding train", i, n)) if progress else None)
    query_emb = embed_samples(queries, (lambda i, n: progress("embedding queries", i, n)) if progress else None)
    nn = nearest_neighbours(train_emb, query_emb)
    return BaselineReports(
        ids=[s.image_id for s in queries],
        references=[eval_text(s) for s in queries],
        generated={
            "most-common report": [common] * len(queries),
            "always-normal report": [normal] * len(queries),
            "nearest neighbour (32x32 cosine)": [eval_text(tr[i]) for i in nn],
        },
        neighbour_ids=[tr[i].image_id for i in nn],
        train=tr,
        queries=list(queries),
    )


def curated_baselines(
    split: str = "val",
    *,
    seed: int = 0,
    root: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[BaselineReports, list[str]]:
    """Baselines on the curated set's ``split`` with composed train/reference reports; returns the
    reports and the notes the output must carry."""
    from lab.data.cxr import load_cxr
    from lab.data.paired import SentenceBank, pair_reports

    if split == "train":
        raise ValueError("baselines are scored on a held-out split (val or test), not on train")
    ds = load_cxr(root, splits=("train", split))
    bank = SentenceBank.from_iu(None if root is None else Path(root) / "text_only" / "iu_xray_reports.jsonl")
    train = pair_reports(ds.by_split("train"), bank, seed=seed)
    queries = pair_reports(ds.by_split(split), bank, seed=seed)
    if not queries:
        raise ValueError(f"split {split!r} has no images here")
    real = sum(s.report_is_real for s in queries)
    notes = [
        f"curated set, split {split}: {len(queries)} images, {len(train)} training images",
        f"references: {len(queries) - real} of {len(queries)} are COMPOSED reports (lab.data.paired, seed {seed}) "
        "built from real IU sentences matching each image's labels, not radiologists' reports of these images",
        "training reports for most-common and nearest-neighbour are composed the same way",
    ]
    if ds.problems:
        notes.append(f"{len(ds.problems)} manifest rows skipped (missing/broken files)")
    return baseline_reports(train, queries, progress), notes


def vqa_baselines(train: Sequence[Sample], queries: Sequence[Sample], neighbour_ids: Sequence[str]) -> dict[str, dict]:
    """VQA bars on the queries' rule-derived questions: the training majority answer per question, and the
    answer the nearest training image gets to the same question (majority answer when it has none)."""
    from lab.data.qa import derive_qa
    from lab.eval.vqa import vqa_scores

    by_image: dict[str, dict[str, str]] = {}
    answers: dict[str, Counter[str]] = {}
    for s in train:
        qa = derive_qa(s)
        by_image[s.image_id] = {q.question: q.answer for q in qa}
        for q in qa:
            answers.setdefault(q.question, Counter())[q.answer] += 1
    majority = {q: c.most_common(1)[0][0] for q, c in answers.items()}
    refs: list[str] = []
    kinds: list[str] = []
    preds: dict[str, list[str]] = {"majority answer (train)": [], "nearest neighbour's answer": []}
    for s, nn_id in zip(queries, neighbour_ids, strict=True):
        for q in derive_qa(s):
            refs.append(q.answer)
            kinds.append(q.kind)
            fallback = majority.get(q.question, "no")
            preds["majority answer (train)"].append(fallback)
            preds["nearest neighbour's answer"].append(by_image.get(nn_id, {}).get(q.question, fallback))
    return {name: vqa_scores(p, refs, kinds) for name, p in preds.items()}
