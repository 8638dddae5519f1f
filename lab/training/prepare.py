"""Build a training work folder: text BPE, the VQ tokenizer copy, and the tokenised corpus.

Images come from the cxr train split; their report text is composed from real IU sentences that
match each image's labels (lab.data.paired), `variants` times with different seeds so the model
learns findings rather than one wording; question/answer pairs come from engines.qa when present.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from engines.tokenizers.text import TextTokenizer
from engines.tokenizers.vq import VQVAE
from lab.training.augment import jitter_image
from lab.training.corpus import Corpus, build_corpus
from lab.training.finding_targets import choose_findings, finding_targets
from lab.training.images import to_model_range

CORPUS_FILE = "corpus.pt"


@torch.no_grad()
def encode_images(vq: VQVAE, images: list[np.ndarray], batch: int = 32) -> torch.Tensor:
    codes = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.stack(images[i:i + batch]))[:, None]
        codes.append(vq.encode(to_model_range(x)).reshape(len(x), -1))
    return torch.cat(codes)


def _load_u8(sample, size: int) -> np.ndarray:
    from PIL import Image

    im = Image.open(sample.image_path).convert("L")
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def prepare(data_root: Path, vq_dir: Path, work: Path, text_len: int = 128, vocab_size: int = 2000,
            variants: int = 3, seed: int = 0, splits: tuple[str, ...] = ("train",), limit: int | None = None,
            keep_tokenizers: bool = False, augment: int = 0) -> dict:
    """`keep_tokenizers` reuses the work folder's text tokenizer and VQ (rebuild the corpus, e.g. with new
    QA pairs, under a model that is already training); `augment` V > 0 adds V jittered token views of every
    image (lab.training.augment), drawn at random during training."""
    from lab.data.cxr import load_cxr
    from lab.data.iu import load_iu_reports
    from lab.data.paired import SentenceBank, pair_reports

    work.mkdir(parents=True, exist_ok=True)
    samples = list(load_cxr(data_root, splits, limit=limit))
    iu_path = data_root / "text_only" / "iu_xray_reports.jsonl"
    iu = load_iu_reports(iu_path)
    bank = SentenceBank.from_reports(iu)
    reports: list[tuple[int, str, str]] = []
    for v in range(variants):
        for k, s in enumerate(pair_reports(samples, bank, seed=seed + v)):
            reports.append((k, s.report_findings, s.report_impression))
    qas: list[tuple[int, str, str]] = []
    try:
        from lab.data.qa import derive_qa
    except ImportError:
        derive_qa = None
    if derive_qa is not None:
        paired = pair_reports(samples, bank, seed=seed)
        for k, s in enumerate(paired):
            for qa in derive_qa(s):
                qas.append((k, qa.question, qa.answer))
    texts = [r.findings for r in iu] + [r.impression for r in iu] + [f for _, f, _ in reports] + \
            [i for _, _, i in reports] + [q for _, q, _ in qas] + [a for _, _, a in qas]
    if keep_tokenizers:
        tok = TextTokenizer.load(work)
    else:
        tok = TextTokenizer.train(texts, vocab_size)
        tok.save(work)
        for name in ("vq.safetensors", "vq_config.json", "vq_eval.json"):
            if (vq_dir / name).exists():
                shutil.copy2(vq_dir / name, work / name)
    vq = VQVAE.load(work)
    pixels = [_load_u8(s, vq.config.image_size) for s in samples]
    codes = encode_images(vq, pixels)
    corpus: Corpus = build_corpus(tok, codes, [s.image_id for s in samples], reports, qas, text_len)
    corpus.label_names = list(choose_findings(samples))
    corpus.labels = finding_targets(samples, corpus.label_names)
    if augment > 0:
        rng = np.random.default_rng(seed + 104729)
        corpus.views = torch.stack([encode_images(vq, [jitter_image(p, rng) for p in pixels]).long()
                                    for _ in range(augment)])
    corpus.save(work / CORPUS_FILE)
    summary = {"images": len(samples), "splits": list(splits), "report_rows": len(reports), "qa_rows": len(qas),
               "variants": variants, "augment_views": augment, "finding_labels": corpus.label_names, "text_vocab": tok.vocab_size, "codebook": vq.config.codebook_size,
               "sources": sorted({s.source for s in samples}), "qa_available": derive_qa is not None,
               "truncated_reports": int((corpus.text[: len(reports), -1] != tok.pad_id).sum())}
    (work / "prepare.json").write_text(json.dumps(summary, indent=2))
    (work / "train_image_ids.txt").write_text("\n".join(corpus.image_ids) + "\n")
    return summary
