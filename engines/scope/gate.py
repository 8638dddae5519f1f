"""The input gate: is each image of a job one the engine can read? Header rules first, then the image
checks on the engine's embedding (out-of-distribution score and frontal-chest check, engines.scope.stats).

A job is in scope when at least one of its images is; images out of scope are left out of the job and
named. Every decision says what was checked: an engine without fitted statistics gets the header rules
only, and the decision says the image itself was not checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engines.scope.embedding import Embed
from engines.scope.header import check_header
from engines.scope.stats import ScopeStatistics

SCOPE_STATEMENT = "This engine reads frontal (PA/AP) chest radiographs only."


@dataclass
class ImageScope:
    """The gate's verdict on one image."""

    index: int
    in_scope: bool
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ood_score: float | None = None
    frontal_probability: float | None = None
    image_checked: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "in_scope": self.in_scope, "reasons": list(self.reasons),
                "notes": list(self.notes), "ood_score": self.ood_score,
                "frontal_probability": self.frontal_probability, "image_checked": self.image_checked}


@dataclass
class ScopeDecision:
    """The gate's verdict on a job's images; `override` is set when the user ran it anyway."""

    in_scope: bool
    images: list[ImageScope]
    image_check: str  # "on" | why it is off
    ood_threshold: float | None = None
    frontal_threshold: float | None = None
    override: bool = False

    @property
    def used(self) -> list[int]:
        """Indices of the images the job reads: those in scope (all of them under an override)."""
        if self.override and not self.in_scope:
            return [im.index for im in self.images]
        return [im.index for im in self.images if im.in_scope]

    @property
    def reason(self) -> str:
        """One line: why the job is out of scope (the first image's reasons), or '' when it is in."""
        if self.in_scope:
            return ""
        first = next((im for im in self.images if im.reasons), None)
        return "; ".join(first.reasons) if first else "no image to read"

    def summary(self) -> str:
        """The sentence every job shows: in or out of scope, and on what grounds."""
        n = len(self.images)
        left = [im for im in self.images if not im.in_scope]
        checked = "header and image checked" if self.image_check == "on" else \
            f"header checked; image not checked ({self.image_check})"
        if not self.in_scope:
            head = f"Override: out of scope ({self.reason}), run anyway at the user's request" if self.override \
                else f"Out of scope: {self.reason}"
            return f"{head}. {SCOPE_STATEMENT}"
        text = f"In scope ({checked})"
        if left:
            text += f"; {len(left)} of {n} images left out: " + "; ".join(
                f"image {im.index + 1}: {', '.join(im.reasons)}" for im in left)
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        return {"in_scope": self.in_scope, "override": self.override, "summary": self.summary(),
                "reason": self.reason, "image_check": self.image_check, "used": self.used,
                "ood_threshold": self.ood_threshold, "frontal_threshold": self.frontal_threshold,
                "images": [im.to_dict() for im in self.images]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScopeDecision:
        images = [ImageScope(**{k: v for k, v in im.items()}) for im in data.get("images") or []]
        return cls(bool(data.get("in_scope")), images, str(data.get("image_check", "")),
                   data.get("ood_threshold"), data.get("frontal_threshold"), bool(data.get("override")))


class InputGate:
    """`check(images, headers)` -> ScopeDecision. `embed` and `stats` may be None (header rules only);
    `unavailable` then says why the image is not checked."""

    def __init__(self, embed: Embed | None = None, stats: ScopeStatistics | None = None,
                 embedding_name: str = "", unavailable: str = "") -> None:
        self.embed, self.stats = embed, stats
        self.embedding_name = embedding_name or (stats.embedding if stats is not None else "")
        self.unavailable = unavailable
        if embed is not None and stats is not None and embedding_name and stats.embedding != embedding_name:
            self.embed, self.stats = None, None
            self.unavailable = (f"the statistics were fitted on the embedding '{stats.embedding}', the engine "
                                f"gives '{embedding_name}'; refit them with `radstation-eval scope fit`")
        elif embed is None or stats is None:
            self.unavailable = unavailable or "no input-gate statistics for this engine"

    @property
    def image_check(self) -> str:
        return "on" if self.embed is not None and self.stats is not None else self.unavailable

    def check(self, images: Sequence[np.ndarray], headers: Sequence[Mapping[str, Any] | None] | None = None,
              override: bool = False, embeddings: np.ndarray | None = None) -> ScopeDecision:
        """`embeddings` (N, D), when the caller has them already, saves computing them again."""
        headers = list(headers or [])
        results = []
        for i in range(len(images)):
            h = check_header(headers[i] if i < len(headers) else None)
            results.append(ImageScope(i, h.in_scope, list(h.reasons), list(h.notes)))
        stats = self.stats
        if self.embed is not None and stats is not None and len(images):
            emb = np.asarray(self.embed(list(images)) if embeddings is None else embeddings, np.float32)
            ood, frontal = stats.ood_score(emb), stats.frontal_probability(emb)
            for im, o, p in zip(results, ood, frontal, strict=True):
                im.image_checked = True
                im.ood_score, im.frontal_probability = round(float(o), 4), round(float(p), 4)
                if o > stats.ood_threshold:
                    im.reasons.append(f"the image is unlike the chest radiographs the engine was trained on "
                                      f"(distance {o:.1f}, limit {stats.ood_threshold:.1f})")
                if p < stats.frontal_threshold:
                    im.reasons.append(f"the image does not look like a frontal chest radiograph "
                                      f"(frontal-chest check {p:.0%}, needs {stats.frontal_threshold:.0%})")
                im.in_scope = not im.reasons
        in_scope = any(im.in_scope for im in results)
        return ScopeDecision(in_scope, results, self.image_check,
                             None if stats is None or self.embed is None else stats.ood_threshold,
                             None if stats is None or self.embed is None else stats.frontal_threshold,
                             override=bool(override))
