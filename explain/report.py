"""Per-sentence and per-finding maps over the image for one report (drafted or edited) and one image.

Sentences and finding mentions come from the project's labeler, so "which finding does this sentence
assert" is the same rule everywhere (evaluation, UI, uncertainty). Maps are kept on the token grid
(small: cacheable, cheap to toggle) and upsampled to the image's pixels on request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engines.errors import JobCancelled
from engines.labeler import label_report
from explain.align import align_report
from explain.attention import attention_grids
from explain.attribution import attribution_grids, finding_head_grid, span_token_stats
from explain.geometry import grid_to_image, normalise
from explain.head_cam import finding_head_cam
from explain.reader_cam import contrast_grid, reader_finding_grids

METHODS = ("attention", "ig", "head", "cam", "reader")
# Signed IG: show only evidence *for* the text. "head": IG of the backbone's finding head for the span's
# findings, "cam": the head's class activation map (explain.head_cam); none for spans without a finding the
# head knows, or weights without a head. "reader": Grad-CAM of the finding reader (explain.reader_cam) for the span's
# findings - the model whose reading the engine uses - when the model folder ships one.
POSITIVE_ONLY = {"attention": False, "ig": True, "head": True, "cam": True, "reader": True}
HEAD_METHODS = ("head", "cam")


@dataclass
class SpanMap:
    """Maps (token grid, one per method) for a span of the report: a sentence or a finding mention."""

    text: str
    start: int
    end: int
    grids: dict[str, np.ndarray] = field(default_factory=dict)
    image_shape: tuple[int, int] = (0, 0)

    def pixel_map(self, method: str) -> np.ndarray | None:
        """The method's map over the image's pixels, scaled to [0, 1]; None when not computed or the
        span was cut off by the model's text length."""
        g = self.grids.get(method)
        if g is None or not np.isfinite(g).all():
            return None
        return normalise(grid_to_image(g, self.image_shape), POSITIVE_ONLY.get(method, False))

    @property
    def attention_map(self) -> np.ndarray | None:
        return self.pixel_map("attention")

    @property
    def attribution_map(self) -> np.ndarray | None:
        return self.pixel_map("ig")


@dataclass
class FindingMap(SpanMap):
    finding: str = ""
    value: int = 1  # labeler value in this sentence: 1 positive, 0 negative, -1 uncertain
    sentence: int = 0  # index into ReportExplanation.sentences


@dataclass
class SentenceMap(SpanMap):
    findings: dict[str, int] = field(default_factory=dict)
    entropy: float = float("nan")  # model's mean predictive entropy (nats) over the sentence's tokens
    confidence: float = float("nan")  # mean probability of the written tokens with the sentence masked


@dataclass
class ReportExplanation:
    report_text: str
    image_shape: tuple[int, int]
    grid: int
    methods: tuple[str, ...]
    sentences: list[SentenceMap]
    findings: list[FindingMap]

    def finding_maps(self, finding: str) -> list[FindingMap]:
        return [f for f in self.findings if f.finding == finding]


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {img.shape}")
    return img


def _check_methods(methods: tuple[str, ...]) -> None:
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown explanation methods {unknown}; choose from {METHODS}")


def _head_findings(span: SpanMap, known: tuple[str, ...]) -> tuple[str, ...]:
    """The head findings a span asserts: a finding mention's own finding, a sentence's present or uncertain
    ones (a normal sentence: No Finding); negated findings have no evidence to point at."""
    if isinstance(span, FindingMap):
        names = [span.finding] if span.value != 0 else []
    elif isinstance(span, SentenceMap):
        names = [f for f, v in span.findings.items() if v != 0]
    else:
        names = []
    return tuple(sorted(f for f in names if f in known))


def explain_spans(pipeline, image: np.ndarray, report_text: str, spans: list[SpanMap], *,
                  methods: tuple[str, ...] = METHODS, attention_steps: int = 4, aggregation: str = "rollout",
                  ig_steps: int = 16, seed: int = 0, codes: np.ndarray | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> list[SpanMap]:
    """Fill `grids` (and, for SentenceMaps, entropy/confidence) of any character spans of the report:
    the building block of explain_report, also used for arbitrary phrases (e.g. 'left lung')."""
    _check_methods(methods)
    img = _check_image(image)
    model = pipeline.model
    row = align_report(pipeline.tokenizer, report_text, model.config.text_len)
    if codes is None:
        codes = pipeline.encode_image(img)
    codes = np.asarray(codes).reshape(-1)
    positions = [row.positions(s.start, s.end) for s in spans]
    head_findings = [_head_findings(s, model.config.findings) if set(HEAD_METHODS) & set(methods) else ()
                     for s in spans]
    reader = getattr(pipeline, "reader", None)
    reader_findings = [_head_findings(s, reader.findings) if reader is not None and "reader" in methods else ()
                       for s in spans]
    total = len(spans) * (1 + ("ig" in methods)) + 1 + ("head" in methods) * len({h for h in head_findings if h})
    done = 0

    def tick() -> None:
        nonlocal done
        if cancel is not None and cancel():
            raise JobCancelled("explanation cancelled")
        done += 1
        if progress is not None:
            progress(done, total)

    if "attention" in methods:
        grids = attention_grids(model, row.ids, codes, positions, steps=attention_steps, method=aggregation,
                                seed=seed)
        for s, gm in zip(spans, grids, strict=True):
            s.grids["attention"] = gm
    tick()
    head_grids: dict[tuple[str, ...], np.ndarray] = {}
    for s, hf in zip(spans, head_findings, strict=True):
        if hf and "head" in methods:
            if hf not in head_grids:
                head_grids[hf] = finding_head_grid(model, codes, list(hf), n_steps=ig_steps)
                tick()
            s.grids["head"] = head_grids[hf]
        if hf and "cam" in methods:  # one forward pass: no progress tick of its own
            s.grids["cam"] = finding_head_cam(model, codes, list(hf))
    every: dict[str, np.ndarray] | None = None  # the plain map of each finding the reader reads, made once
    for s, rf in zip(spans, reader_findings, strict=True):
        if rf:  # a few small forward/backward passes: no progress tick of its own
            if every is None:
                every = reader_finding_grids(reader, img)
            s.grids["reader"] = contrast_grid(every, list(rf))  # class-contrastive (explain.reader_cam)
    for s, pos in zip(spans, positions, strict=True):
        if "ig" in methods:
            s.grids["ig"] = attribution_grids(model, row.ids, codes, [pos], n_steps=ig_steps)[0]
            tick()
        if isinstance(s, SentenceMap) and pos:
            s.entropy, s.confidence = span_token_stats(model, row.ids, codes, pos)
        tick()
    return spans


def explain_report(pipeline, image: np.ndarray, report_text: str, *, methods: tuple[str, ...] = METHODS,
                   attention_steps: int = 4, aggregation: str = "rollout", ig_steps: int = 16, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None) -> ReportExplanation:
    """Maps for every sentence of `report_text` and every finding mention in it, over `image`.

    `pipeline` is an `engines.pipeline.MedimPipeline` (its torch model, tokenizer and image encoder
    are used). Raises ValueError for an empty report or a non-2D image, JobCancelled when
    `cancel()` turns True between spans."""
    _check_methods(methods)
    img = _check_image(image)
    if not isinstance(report_text, str) or not report_text.strip():
        raise ValueError("report text is empty")
    labels = label_report(report_text)
    shape = (int(img.shape[0]), int(img.shape[1]))
    sentences = [SentenceMap(s.text, s.start, s.end, image_shape=shape, findings=dict(s.findings))
                 for s in labels.sentences]
    findings: list[FindingMap] = []
    for k, s in enumerate(labels.sentences):
        seen: dict[str, FindingMap] = {}
        for m in s.mentions:
            fm = seen.get(m.finding)
            if fm is None:
                fm = FindingMap(report_text[m.start:m.end], m.start, m.end, image_shape=shape, finding=m.finding,
                                value=s.findings.get(m.finding, m.value), sentence=k)
                seen[m.finding] = fm
                findings.append(fm)
            else:  # several mentions of one finding in a sentence: one map over all of them
                fm.start, fm.end = min(fm.start, m.start), max(fm.end, m.end)
                fm.text = report_text[fm.start:fm.end]
    explain_spans(pipeline, img, report_text, [*sentences, *findings], methods=methods,
                  attention_steps=attention_steps, aggregation=aggregation, ig_steps=ig_steps, seed=seed,
                  progress=progress, cancel=cancel)
    return ReportExplanation(report_text, shape, pipeline.model.config.image_grid, tuple(methods), sentences,
                             findings)
