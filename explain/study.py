"""One call for everything the explain panel shows for a study: maps per sentence and finding,
per-token / per-sentence / per-finding uncertainty and the image uncertainty map.

Serialisable to flat arrays + JSON (explain.cache stores them) so a second look is instant.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from engines.labeler import label_report
from engines.reading import read_images
from engines.sampling.results import TextResult
from explain.geometry import grid_to_image, normalise
from explain.report import METHODS, FindingMap, ReportExplanation, SentenceMap, explain_report
from explain.uncertainty import (
    FindingUncertainty,
    TokenUncertainty,
    draft_findings,
    draft_tokens,
    finding_uncertainty,
    image_uncertainty_grid,
    sample_drafts,
    span_token_uncertainty,
)


@dataclass
class StudyExplanation:
    report: ReportExplanation
    drafts: list[str] = field(default_factory=list)  # the K sampled drafts behind the disagreement
    findings: dict[str, FindingUncertainty] = field(default_factory=dict)
    sentence_disagreement: list[float | None] = field(default_factory=list)  # max over its findings
    sentence_tokens: list[TokenUncertainty | None] = field(default_factory=list)  # sampler stats (AI draft)
    image_uncertainty: np.ndarray | None = None  # (g, g) token entropy in synthesis
    # The finding head's probability per finding it knows (the views averaged), the model's most direct reading of
    # the image, and the training prevalence it is judged against (empty for weights without a head).
    head_probabilities: dict[str, float] = field(default_factory=dict)
    head_prior: dict[str, float] = field(default_factory=dict)

    @property
    def sentences(self) -> list[SentenceMap]:
        return self.report.sentences

    def image_uncertainty_map(self) -> np.ndarray | None:
        """Image-token entropy over the image's pixels, scaled to [0, 1]."""
        if self.image_uncertainty is None:
            return None
        return normalise(grid_to_image(self.image_uncertainty, self.report.image_shape))

    def finding_confidence(self, finding: str) -> float | None:
        """Share of sampled drafts that agree with the report on `finding` (None without drafts)."""
        fu = self.findings.get(finding)
        return None if fu is None else fu.agreement

    # -- (de)serialisation for the cache -------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        r = self.report
        arrays: dict[str, np.ndarray] = {}
        spans = []
        for kind, items in (("s", r.sentences), ("f", r.findings)):
            for k, sp in enumerate(items):
                for method, g in sp.grids.items():
                    arrays[f"{kind}{k}_{method}"] = g
                d = {"text": sp.text, "start": sp.start, "end": sp.end}
                if isinstance(sp, SentenceMap):
                    d.update(findings=sp.findings, entropy=sp.entropy, confidence=sp.confidence)
                else:
                    d.update(finding=sp.finding, value=sp.value, sentence=sp.sentence)
                spans.append((kind, d))
        if self.image_uncertainty is not None:
            arrays["image_uncertainty"] = self.image_uncertainty
        meta = {
            "report_text": r.report_text, "image_shape": list(r.image_shape), "grid": r.grid,
            "methods": list(r.methods), "spans": spans, "drafts": self.drafts,
            "findings": {f: asdict(u) for f, u in self.findings.items()},
            "sentence_disagreement": self.sentence_disagreement,
            "sentence_tokens": [None if t is None else asdict(t) for t in self.sentence_tokens],
            "head_probabilities": self.head_probabilities, "head_prior": self.head_prior,
        }
        arrays["meta"] = np.array(json.dumps(meta))
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> StudyExplanation:
        meta = json.loads(str(arrays["meta"]))
        shape = tuple(meta["image_shape"])
        sentences: list[SentenceMap] = []
        findings: list[FindingMap] = []
        for kind, d in meta["spans"]:
            items = sentences if kind == "s" else findings
            k = len(items)
            grids = {m: np.asarray(arrays[f"{kind}{k}_{m}"]) for m in meta["methods"] if f"{kind}{k}_{m}" in arrays}
            if kind == "s":
                items.append(SentenceMap(d["text"], d["start"], d["end"], grids, shape, d["findings"],
                                         d["entropy"], d["confidence"]))
            else:
                items.append(FindingMap(d["text"], d["start"], d["end"], grids, shape, d["finding"], d["value"],
                                        d["sentence"]))
        report = ReportExplanation(meta["report_text"], shape, meta["grid"], tuple(meta["methods"]), sentences,
                                   findings)
        return cls(report, meta["drafts"], {f: FindingUncertainty(**u) for f, u in meta["findings"].items()},
                   meta["sentence_disagreement"],
                   [None if t is None else TokenUncertainty(**t) for t in meta["sentence_tokens"]],
                   np.asarray(arrays["image_uncertainty"]) if "image_uncertainty" in arrays else None,
                   meta.get("head_probabilities", {}), meta.get("head_prior", {}))  # absent in older caches


def explain_study(pipeline, images: list[np.ndarray] | np.ndarray, report_text: str, *,
                  draft: TextResult | dict | None = None, k_drafts: int = 4, methods: tuple[str, ...] = METHODS,
                  image_uncertainty: bool = True, view: int = 0, seed: int = 0, steps: int | None = None,
                  ig_steps: int = 16, attention_steps: int = 4,
                  progress: Callable[[int, int], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> StudyExplanation:
    """Maps over `images[view]` for `report_text`, disagreement of `k_drafts` sampled drafts (0 skips),
    and the image uncertainty map. `draft` is the engine's TextResult or the app's draft dict: the
    sampler's per-token confidence/entropy are attached to the sentences still verbatim from it."""
    if isinstance(images, np.ndarray):
        images = [images]
    if not images:
        raise ValueError("explain_study needs at least one image")
    if not 0 <= view < len(images):
        raise ValueError(f"view {view} out of range for {len(images)} image(s)")
    if k_drafts < 0:
        raise ValueError(f"k_drafts must be >= 0, got {k_drafts}")
    phases = [1.0, float(k_drafts), 1.0 if image_uncertainty else 0.0]
    total_units = 100
    weights = [p / sum(phases) for p in phases]

    def phase(i: int) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        base = sum(weights[:i])
        return lambda d, n: progress(int(round(total_units * (base + weights[i] * d / max(n, 1)))), total_units)

    rep = explain_report(pipeline, images[view], report_text, methods=methods, seed=seed, ig_steps=ig_steps,
                         attention_steps=attention_steps, progress=phase(0), cancel=cancel)
    out = StudyExplanation(rep)
    # the engine's reading as the AI panel and the answers show it: calibrated, with the prevalence on its scale
    cal = pipeline.answer_calibration() if hasattr(pipeline, "answer_calibration") else None
    reading = read_images(pipeline, list(images), cal)
    if reading:
        out.head_probabilities = {f: float(r["probability"]) for f, r in reading.items()}
        out.head_prior = {f: float(r["prevalence"]) for f, r in reading.items() if r["prevalence"] is not None}
    tokens = draft_tokens(draft, report_text)
    out.sentence_tokens = [span_token_uncertainty(tokens, s.start, s.end) for s in rep.sentences]
    if k_drafts:
        out.drafts = sample_drafts(pipeline, images, k_drafts, seed=seed, steps=steps, progress=phase(1),
                                   cancel=cancel)
        report_findings = dict(label_report(report_text).findings)
        out.findings = finding_uncertainty(report_findings, draft_findings(out.drafts))
        out.sentence_disagreement = [
            max((out.findings[f].uncertainty for f in s.findings if f in out.findings), default=None)
            for s in rep.sentences]
    else:
        out.sentence_disagreement = [None] * len(rep.sentences)
    if image_uncertainty:
        out.image_uncertainty = image_uncertainty_grid(pipeline, report_text, seed=seed, steps=steps, cancel=cancel)
        if progress is not None:
            progress(total_units, total_units)
    return out
