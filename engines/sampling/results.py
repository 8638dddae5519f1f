"""What the generation jobs hand back: text with per-token uncertainty, images with per-token grids."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TokenInfo:
    """One generated text token: where it sits in the text, how sure the model was when committing it."""

    text: str
    token_id: int
    confidence: float  # probability of the committed token at its commit step
    entropy: float  # predictive entropy (nats) at that step
    step: int  # unmasking step (0-based) at which it was committed
    char_start: int
    char_end: int


@dataclass
class TextResult:
    text: str
    findings_text: str = ""
    impression_text: str = ""
    tokens: list[TokenInfo] = field(default_factory=list)
    steps: int = 0
    seed: int = 0
    elapsed_s: float = 0.0
    consensus: tuple[int, float] | None = None  # (drafts sampled, the kept one's agreement with the others)
    finding_states: dict[str, float] | None = None  # what a finding-conditioned draft was told (1 present, 0 absent)
    mode: str = "free"  # "sentences" (engines.sentences) or "free" (token-level unmasking)
    sentences: list[dict] | None = None  # sentence drafts: each chosen sentence, its confidence and provenance
    reading: dict | None = None  # sentence drafts: the study reading they were written to
    finding_probabilities: dict[str, float] | None = None  # the reader's probability per finding, when it read


@dataclass
class ImageResult:
    image: np.ndarray  # uint8 (H, W)
    token_grid: np.ndarray  # int (g, g) VQ codes
    token_confidence: np.ndarray  # float (g, g); 1.0 where the token was given, not generated
    token_entropy: np.ndarray  # float (g, g); 0.0 where given
    steps: int = 0
    seed: int = 0
    elapsed_s: float = 0.0


@dataclass
class AttentionMaps:
    """Per-layer attention between text and image tokens (explain/grounding).

    text_to_image[l, h, i, j]: how much text position i attends to image token j in layer l, head h
    (image tokens in row-major grid order); image_to_text is the reverse direction.
    """

    text_to_image: np.ndarray  # (layers, heads, n_text, grid*grid)
    image_to_text: np.ndarray  # (layers, heads, grid*grid, n_text)
    text_tokens: list[str]  # the report's tokens (n_text), without padding
    text_token_ids: list[int]
    grid: int
