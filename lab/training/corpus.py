"""Tokenised training corpus: every image as VQ codes with its report row, plus question/answer rows.

Built once (VQ encoding is the slow part) and saved as one tensor file, so training - single process
or under torchrun - only indexes tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from engines.diffusion.layout import qa_row, report_row
from engines.tokenizers.text import TextTokenizer


@dataclass
class Corpus:
    text: torch.Tensor  # (R, text_len) long: report rows then QA rows
    prefix_len: torch.Tensor  # (R,) long: fixed text prefix (QA question) per row
    is_qa: torch.Tensor  # (R,) bool
    image_index: torch.Tensor  # (R,) long: row -> image
    images: torch.Tensor  # (N, image_len) long VQ codes
    image_ids: list[str]
    views: torch.Tensor | None = None  # (V, N, image_len): VQ codes of V jittered copies (training.augment)
    labels: torch.Tensor | None = None  # (N, K) float finding targets per image (training.finding_targets)
    label_names: list[str] | None = None  # the K findings of `labels`

    def __len__(self) -> int:
        return self.text.shape[0]

    def save(self, path: str | Path) -> None:
        torch.save({k: getattr(self, k) for k in self.__dataclass_fields__}, str(path))

    @classmethod
    def load(cls, path: str | Path) -> Corpus:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no training corpus at {path}")
        return cls(**torch.load(str(path), weights_only=False))

    def image_rows(self, image_index: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        """Codes of these images; with jittered views, each row draws the original or one of its views."""
        if self.views is None or len(self.views) == 0:
            return self.images[image_index]
        v = torch.randint(0, len(self.views) + 1, (len(image_index),), generator=g)
        jittered = self.views[(v - 1).clamp_min(0), image_index]
        return torch.where((v == 0)[:, None], self.images[image_index], jittered)

    def check(self, text_len: int, image_len: int, text_vocab: int, image_vocab: int) -> None:
        if self.text.shape[1] != text_len or self.images.shape[1] != image_len:
            raise ValueError(f"corpus rows are {self.text.shape[1]} text / {self.images.shape[1]} image tokens; "
                             f"the model wants {text_len} / {image_len}")
        if self.views is not None and tuple(self.views.shape[1:]) != tuple(self.images.shape):
            raise ValueError(f"corpus views {tuple(self.views.shape)} do not match its images {tuple(self.images.shape)}")
        if self.labels is not None and (self.label_names is None or
                                        tuple(self.labels.shape) != (len(self.images), len(self.label_names))):
            raise ValueError(f"corpus labels {tuple(self.labels.shape)} do not match its {len(self.images)} images "
                             f"and {len(self.label_names or [])} finding names")
        if int(self.text.max()) >= text_vocab or int(self.images.max()) >= image_vocab:
            raise ValueError("corpus ids exceed the model vocabulary (tokenizer/VQ mismatch)")


def build_corpus(tok: TextTokenizer, codes: torch.Tensor, image_ids: list[str],
                 reports: list[tuple[int, str, str]], qas: list[tuple[int, str, str]], text_len: int) -> Corpus:
    """`reports` = (image index, findings, impression) - several per image allowed (text variants);
    `qas` = (image index, question, answer)."""
    if not reports:
        raise ValueError("no reports to train on")
    if max(k for k, _, _ in reports + qas) >= len(codes) or min(k for k, _, _ in reports + qas) < 0:
        raise ValueError("a report or QA pair points at an image that is not in the corpus")
    rows = [report_row(tok, f, i, text_len) for _, f, i in reports]
    rows += [qa_row(tok, q, a, text_len) for _, q, a in qas]
    n = len(reports)
    return Corpus(
        text=torch.tensor([r.ids for r in rows], dtype=torch.long),
        prefix_len=torch.tensor([r.prefix_len for r in rows], dtype=torch.long),
        is_qa=torch.tensor([False] * n + [True] * len(qas)),
        image_index=torch.tensor([k for k, _, _ in reports] + [k for k, _, _ in qas], dtype=torch.long),
        images=codes.long().reshape(len(codes), -1),
        image_ids=list(image_ids),
    )
