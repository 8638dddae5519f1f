"""What a backend's jobs return: plain dataclasses that cross the worker pipe as JSON-able dicts.

Backends differ (a diffusion engine that knows each token's commit step, a VLM that only knows the
token's probability); these types keep the fields every consumer needs and leave the rest in `extra`.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


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


@dataclass
class TextOutput:
    """A drafted report or an answer. `confidence` is the mean token confidence (0..1)."""

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

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "text", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextOutput:
        values = {k: v for k, v in data.items() if k != "kind"}
        values["tokens"] = [TokenUncertainty(**t) for t in values.get("tokens", [])]
        return cls(**values)


@dataclass
class ImageOutput:
    """A synthesised or inpainted image (uint8, H x W grayscale) plus per-token maps where the engine has them."""

    image: np.ndarray
    steps: int = 0
    seed: int = 0
    elapsed_s: float = 0.0
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "image", "image": self.image, "steps": self.steps, "seed": self.seed,
                "elapsed_s": self.elapsed_s, "maps": dict(self.maps), "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageOutput:
        return cls(**{k: v for k, v in data.items() if k != "kind"})


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
