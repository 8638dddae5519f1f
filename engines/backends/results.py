"""What a backend's jobs return: typed results, and their one wire form (`to_json` / `result_from_json`).

Backends differ (a diffusion engine that knows each token's commit step, a VLM that only knows the
token's probability); these types keep the fields every consumer needs and leave the rest in `extra`.
A job behind the input gate (engines.scope.guard) returns one of them with the gate's decision (`scope`),
or, stopped, `OutOfScope` / `Refused` instead; the worker adds `provenance` (which engine and weights).
`to_json()` is the dict a worker or service sends (JSON-able but for numpy arrays, which the worker
protocol carries as arrays), tagged with `kind`; `result_from_json` rebuilds the type named by that tag and
refuses unknown fields with a ResultError that names them, so a result never half-arrives.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

from engines.scope.gate import ScopeDecision

T = TypeVar("T", bound="JobResult")


class ResultError(ValueError):
    """A result message that is not one of these types (an unknown kind, an unknown or missing field)."""


@dataclass
class TokenUncertainty:
    """One generated word piece with its confidence; offsets are into the section's text (`section`)."""

    text: str
    confidence: float
    entropy: float
    section: str  # "findings" | "impression" | "answer"
    start: int
    end: int
    step: int = -1


@dataclass(kw_only=True)
class JobResult:
    """Base of every result: `kind` is its wire tag; `scope` the input gate's decision (None for a job that
    reads no image, or a backend method called directly); `provenance` what the worker that ran it adds."""

    kind: ClassVar[str] = ""
    scope: ScopeDecision | None = None
    provenance: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("scope", "provenance") and value is None:
                continue  # left out, as a result without them always was
            out[f.name] = _to_json(value)
        return out

    @classmethod
    def from_json(cls: type[T], data: dict[str, Any]) -> T:
        if not isinstance(data, dict):
            raise ResultError(f"a '{cls.kind}' result must be a mapping, not {type(data).__name__}")
        if data.get("kind", cls.kind) != cls.kind:
            raise ResultError(f"expected a '{cls.kind}' result, got {data.get('kind')!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k != "kind" and k not in cls._derived}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ResultError(f"a '{cls.kind}' result has unknown field(s): {', '.join(map(str, unknown))}")
        if values.get("scope") is not None:
            values["scope"] = ScopeDecision.from_dict(values["scope"])
        try:
            return cls(**cls._rebuild(values))
        except TypeError as exc:  # a required field is missing
            raise ResultError(f"a '{cls.kind}' result is incomplete: {exc}") from None

    _derived: ClassVar[frozenset[str]] = frozenset()  # fields to_json adds for readers, rebuilt from others

    @classmethod
    def _rebuild(cls, values: dict[str, Any]) -> dict[str, Any]:
        return values


def _to_json(value: Any) -> Any:
    if isinstance(value, ScopeDecision):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return dict(value)
    return value


@dataclass(kw_only=True)
class TextOutput(JobResult):
    """A drafted report or an answer. `confidence` is the mean token confidence (0..1)."""

    kind: ClassVar[str] = "text"
    text: str
    findings: str = ""
    impression: str = ""
    tokens: list[TokenUncertainty] = field(default_factory=list)
    confidence: float = 0.0
    steps: int = 0
    seed: int = 0
    elapsed_s: float = 0.0
    images_used: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _rebuild(cls, values: dict[str, Any]) -> dict[str, Any]:
        return {**values, "tokens": [TokenUncertainty(**t) for t in values.get("tokens", [])]}


@dataclass(kw_only=True)
class ImageOutput(JobResult):
    """A synthesised or inpainted image (uint8, H x W grayscale) plus per-token maps where the engine has them."""

    kind: ClassVar[str] = "image"
    image: np.ndarray
    steps: int = 0
    seed: int = 0
    elapsed_s: float = 0.0
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class RegionMaps(JobResult):
    """The backend's own maps (name -> H x W float array) of what it used for a text (the `explain` job)."""

    kind: ClassVar[str] = "maps"
    maps: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(kw_only=True)
class Refused(JobResult):
    """The engine has no basis to answer the question: refused before any image was read."""

    kind: ClassVar[str] = "refused"
    _derived: ClassVar[frozenset[str]] = frozenset({"text"})
    reason: str
    can_answer: str = ""

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "text": ""}  # no answer: readers that show `text` show nothing


@dataclass(kw_only=True)
class OutOfScope(JobResult):
    """The input gate stopped the job (out of scope, not overridden): no draft, answer, map or image, only why."""

    kind: ClassVar[str] = "out_of_scope"
    _derived: ClassVar[frozenset[str]] = frozenset({"text", "message"})
    scope: ScopeDecision

    @property
    def message(self) -> str:
        return self.scope.summary()

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "text": "", "message": self.message}


RESULT_TYPES: dict[str, type[JobResult]] = {
    cls.kind: cls for cls in (TextOutput, ImageOutput, RegionMaps, Refused, OutOfScope)}


def result_from_json(data: dict[str, Any]) -> JobResult:
    """The typed result a worker or service sent (`to_json`), by its `kind` tag."""
    kind = data.get("kind") if isinstance(data, dict) else None
    cls = RESULT_TYPES.get(str(kind))
    if cls is None:
        raise ResultError(f"unknown result kind {kind!r}; expected one of {', '.join(RESULT_TYPES)}")
    return cls.from_json(data)


_IMPRESSION = re.compile(r"\bimpression\s*:?", re.IGNORECASE)
_FINDINGS = re.compile(r"^\s*findings\s*:?\s*", re.IGNORECASE)


def split_sections(text: str) -> tuple[str, str, int, int]:
    """Split free text into (findings, impression, findings_offset, impression_offset) at 'Impression:'.

    Models that write one block without headings give all their text as findings, so nothing is lost.
    """
    match = _IMPRESSION.search(text)
    head, tail, tail_start = (text, "", len(text)) if match is None else (text[: match.start()], text[match.end():], match.end())
    lead = _FINDINGS.match(head)
    f_off = lead.end() if lead else 0
    findings = head[f_off:]
    f_strip = len(findings) - len(findings.lstrip())
    impression = tail
    i_strip = len(impression) - len(impression.lstrip())
    return findings.strip(), impression.strip(), f_off + f_strip, tail_start + i_strip


def tokens_by_section(text: str, pieces: list[tuple[int, int, float, float, int]]) -> tuple[str, str, list[TokenUncertainty]]:
    """Turn (char_start, char_end, confidence, entropy, step) spans over `text` into section-relative tokens."""
    findings, impression, f_off, i_off = split_sections(text)
    out: list[TokenUncertainty] = []
    for start, end, conf, ent, step in pieces:
        for name, body, off in (("findings", findings, f_off), ("impression", impression, i_off)):
            s, e = max(start - off, 0), min(end - off, len(body))
            if e > s and body[s:e].strip():
                out.append(TokenUncertainty(body[s:e], float(conf), float(ent), name, s, e, int(step)))
                break
    return findings, impression, out


def mean_confidence(confidences: list[float]) -> float:
    """Geometric mean of token probabilities: one very unsure token pulls an answer down, as it should."""
    vals = [max(min(float(c), 1.0), 1e-6) for c in confidences]
    return float(math.exp(sum(math.log(v) for v in vals) / len(vals))) if vals else 0.0
