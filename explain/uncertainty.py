"""Where the engine is unsure: per token (sampler), per finding and sentence (disagreement across K
sampled drafts), and over the image (entropy of image tokens when synthesising from the report).

Disagreement is measured on the labeler's findings, not on words: two drafts that phrase the same
finding differently agree; a finding that comes and goes between drafts is uncertain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engines.labeler import FINDINGS, label_report
from engines.sampling.results import TokenInfo

STATES = ("present", "absent", "uncertain")


def finding_state(findings: dict[str, int], finding: str) -> str:
    """The labeler's value as one of STATES (negated and unmentioned are both 'absent')."""
    v = findings.get(finding)
    return "present" if v == 1 else "uncertain" if v == -1 else "absent"


@dataclass(frozen=True)
class FindingUncertainty:
    finding: str
    state: str  # what the explained report says (one of STATES)
    votes: dict[str, int]  # how many drafts said each state
    agreement: float  # share of drafts that say what the report says
    vote_entropy: float  # entropy of the votes / log(3): 0 unanimous .. 1 evenly split

    @property
    def uncertainty(self) -> float:
        return 1.0 - self.agreement


def finding_uncertainty(report_findings: dict[str, int], draft_findings: Sequence[dict[str, int]],
                        findings: Sequence[str] = FINDINGS) -> dict[str, FindingUncertainty]:
    """Per finding, how the K drafts vote relative to the report (needs at least one draft)."""
    if not draft_findings:
        raise ValueError("finding uncertainty needs at least one sampled draft")
    out: dict[str, FindingUncertainty] = {}
    k = len(draft_findings)
    for f in findings:
        votes = {s: 0 for s in STATES}
        for d in draft_findings:
            votes[finding_state(d, f)] += 1
        state = finding_state(report_findings, f)
        ps = [n / k for n in votes.values() if n]
        ent = -sum(p * math.log(p) for p in ps) / math.log(len(STATES))
        out[f] = FindingUncertainty(f, state, votes, votes[state] / k, ent)
    return out


@dataclass(frozen=True)
class TokenUncertainty:
    """Sampler statistics of the drafted tokens inside one span of the text."""

    n_tokens: int
    mean_entropy: float
    min_confidence: float
    mean_confidence: float


def span_token_uncertainty(tokens: Sequence[TokenInfo], start: int, end: int) -> TokenUncertainty | None:
    """Aggregate the committed tokens overlapping [start, end) of the drafted text; None if none do."""
    inside = [t for t in tokens if t.char_start < end and start < t.char_end]
    if not inside:
        return None
    conf = [t.confidence for t in inside]
    return TokenUncertainty(len(inside), float(np.mean([t.entropy for t in inside])), float(min(conf)),
                            float(np.mean(conf)))


def sample_drafts(pipeline, images: list[np.ndarray], k: int, *, seed: int = 0, steps: int | None = None,
                  temperature: float | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> list[str]:
    """K drafts of the study's report under seeds seed+1 .. seed+K (seed itself is the shown draft)."""
    if k < 1:
        raise ValueError(f"the number of sampled drafts must be >= 1, got {k}")
    texts = []
    for j in range(k):
        # Raw samples, not consensus drafts (engines.sampling.consensus), and not told the head's reading
        # (engines.sampling.finding_states): told drafts share one reading, so they would disagree only in wording.
        # Token-level ("free") samples: sentence drafts are deterministic and would never disagree.
        res = pipeline.draft_report(images, steps=steps, seed=seed + 1 + j, temperature=temperature, cancel=cancel,
                                    consensus=1, condition="none", mode="free")
        texts.append(res.text)
        if progress is not None:
            progress(j + 1, k)
    return texts


def draft_findings(texts: Sequence[str]) -> list[dict[str, int]]:
    return [dict(label_report(t).findings) for t in texts]


def committed_entropy_grid(pipeline, report_text: str, *, draws: int = 1, seed: int = 0, steps: int | None = None,
                           cancel: Callable[[], bool] | None = None) -> np.ndarray:
    """(g, g) mean entropy (nats) of the image tokens at the step the sampler committed each, when the engine draws
    the image from the report. Not shown any more (`image_uncertainty_grid` is): it mostly records the order of
    unmasking, a lattice over the token grid (explain/README.md); kept to measure against."""
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    acc = None
    for j in range(draws):
        res = pipeline.synthesise(report_text, steps=steps, seed=seed + j, cancel=cancel)
        acc = res.token_entropy.astype(np.float64) if acc is None else acc + res.token_entropy
    return (acc / draws).astype(np.float32)


def image_uncertainty_grid(pipeline, report_text: str, *, seed: int = 0, steps: int | None = None,
                                        levels: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25), masks: int = 4,
                                        cancel: Callable[[], bool] | None = None) -> np.ndarray:
    """(g, g) mean entropy (nats) of each image token given the report and a random share of the picture the
    engine draws for it: per masked share in `levels`, `masks` random masks (every token masked at share 1.0),
    each token's entropy averaged over the masks that hid it. The sampler's entropy at the step a token was
    committed (`committed_entropy_grid`) mostly records *when* it was unmasked, and confident neighbours are
    committed first, which paints a lattice over the token grid; random masks have no order to paint."""
    res = pipeline.synthesise(report_text, steps=steps, seed=seed, cancel=cancel)
    grid = np.asarray(res.token_grid)
    g = grid.shape[0]
    rng = np.random.default_rng(seed)
    rows = [rng.random((g, g)) < lv for lv in levels for _ in range(1 if lv >= 1.0 else masks)]
    if cancel is not None and cancel():
        from engines.sampling.unmask import GenerationCancelled

        raise GenerationCancelled("generation cancelled")
    ent = pipeline.image_token_entropy(report_text, grid, np.stack(rows))
    return np.nanmean(ent, axis=0).astype(np.float32)


def draft_tokens(draft, report_text: str) -> list[TokenInfo]:
    """The sampler's tokens of a draft placed onto `report_text` (the text as the editor holds it).

    `draft` is an engine TextResult (offsets into its .text) or the app's draft dict (findings,
    impression and per-section token dicts with section/start/end, as engines.backends.results).
    A section is used only where it still appears verbatim in the report: edited text has no sampler
    statistics (the model's own per-sentence entropy is shown there instead)."""
    if draft is None:
        return []
    out: list[TokenInfo] = []
    if isinstance(draft, dict):
        toks = draft.get("token_uncertainty") or draft.get("tokens") or []
        offsets: dict[str, int] = {}
        for sec in ("findings", "impression", "answer"):
            body = (draft.get(sec) or "").strip()
            pos = report_text.find(body) if body else -1
            if pos >= 0:
                offsets[sec] = pos
        for t in toks:
            off = offsets.get(str(t.get("section", "")))
            if off is None:
                continue
            out.append(TokenInfo(str(t.get("text", "")), int(t.get("token_id", -1)), float(t.get("confidence", 0.0)),
                                 float(t.get("entropy", 0.0)), int(t.get("step", -1)), off + int(t["start"]),
                                 off + int(t["end"])))
        return out
    text = getattr(draft, "text", "") or ""
    tokens = list(getattr(draft, "tokens", []) or [])
    if not text.strip():
        return []
    if text.strip() == report_text.strip():
        shift = report_text.find(text.strip()) - text.find(text.strip())
        return [TokenInfo(t.text, t.token_id, t.confidence, t.entropy, t.step, t.char_start + shift,
                          t.char_end + shift) for t in tokens]
    for sec in (getattr(draft, "findings_text", ""), getattr(draft, "impression_text", "")):
        sec = (sec or "").strip()
        src, dst = text.find(sec) if sec else -1, report_text.find(sec) if sec else -1
        if src < 0 or dst < 0:
            continue
        out += [TokenInfo(t.text, t.token_id, t.confidence, t.entropy, t.step, t.char_start - src + dst,
                          t.char_end - src + dst) for t in tokens if src <= t.char_start and t.char_end <= src + len(sec)]
    return out
