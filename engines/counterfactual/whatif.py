"""The what-if job: current report + edited report (or an instruction) + image -> counterfactual
images, one per seed, with the token region that was resampled and the difference to the original.

Steps: diff the reports with the labeler (engines.counterfactual.edits), score and select the image
tokens the change concerns (engines.counterfactual.region) unless the user painted a region, then
`MedimPipeline.inpaint` those tokens under the edited report with classifier-free guidance; every other
token is kept. The image shown is the original plus the model's change (engines.counterfactual.composite),
so beyond a one-token feather around the region it is the acquired image itself. Qt-free: the GUI runs
`run_whatif` in a worker thread with `progress`/`cancel` callbacks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engines.counterfactual.composite import edit_weight, transfer_edit
from engines.counterfactual.edits import EditError, ReportEdit, apply_instruction, diff_reports
from engines.counterfactual.honesty import OUTSIDE_TOLERANCE, outside_change, variant_words
from engines.counterfactual.metrics import Preservation, difference_map, preservation
from engines.counterfactual.ranking import edit_signs, rank_variants
from engines.counterfactual.region import (
    METHODS,
    RegionScores,
    pixel_mask_to_tokens,
    score_region,
    select_tokens,
    tokens_to_pixels,
)

Progress = Callable[[int, int, str], None] | None
Cancel = Callable[[], bool] | None

DEFAULT_GUIDANCE = 3.0


@dataclass(frozen=True)
class WhatIfRequest:
    """Everything a what-if needs; validated on construction so a worker never starts on bad input.

    `edited_report` is the full edited text; `from_instruction` builds it from a short instruction.
    `region` is a (g, g) token mask the user painted (see region.pixel_mask_to_tokens) or None for
    automatic selection with `method`, `area` and `margin`."""

    image: np.ndarray
    current_report: str
    edited_report: str
    seeds: tuple[int, ...] = (0,)
    region: np.ndarray | None = None
    method: str = "combined"
    area: float = 0.15
    margin: int = 1
    steps: int | None = None
    guidance: float = DEFAULT_GUIDANCE
    # > 0: the finding head also steers the tokens the asked way (nats, engines.sampling.head_guidance);
    # None: the weights' sampling default (whatif_head_guidance)
    head_guidance: float | None = None
    # (0, 1]: the finding head's potential (region.py) joins attention and likelihood in choosing the region, with
    # this weight; None: the weights' sampling default (whatif_head_region)
    head_region: float | None = None
    allow_no_change: bool = False  # True: resample even when the labeler sees no finding change
    painted: np.ndarray | None = None  # a pixel mask painted over the image (or its centred square)
    prior_weight: float = 0.5  # 0: model cues only; 1: only where the finding can be (priors.py)
    rank: bool = True  # order variants (and score a single one) by the finding head (ranking.py)

    def __post_init__(self) -> None:
        img = np.asarray(self.image)
        if img.ndim != 2 or img.size == 0:
            raise ValueError(f"the image must be a 2D greyscale array, got shape {img.shape}")
        if not isinstance(self.edited_report, str) or not self.edited_report.strip():
            raise EditError("the edited report is empty")
        if not isinstance(self.current_report, str):
            raise TypeError("current_report must be a string ('' when there is none)")
        if not self.seeds:
            raise ValueError("give at least one seed")
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if self.method not in METHODS:
            raise ValueError(f"unknown region method {self.method!r}; use one of {METHODS}")
        if not 0 < self.area <= 1:
            raise ValueError(f"area must be in (0, 1], got {self.area}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")
        if not 0 <= self.prior_weight <= 1:
            raise ValueError(f"prior_weight must be in [0, 1], got {self.prior_weight}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.head_guidance is not None and self.head_guidance < 0:
            raise ValueError(f"head_guidance must be >= 0, got {self.head_guidance}")
        if self.head_region is not None and not 0 <= self.head_region <= 1:
            raise ValueError(f"head_region must be in [0, 1], got {self.head_region}")
        if self.region is not None:
            r = np.asarray(self.region, bool)
            if r.ndim != 2 or r.shape[0] != r.shape[1] or not r.any():
                raise ValueError("a painted region must be a non-empty square token mask")
            object.__setattr__(self, "region", r)

        if self.painted is not None:
            p = np.asarray(self.painted, bool)
            if p.ndim != 2 or not p.any():
                raise ValueError("the painted region is empty; draw it over the image first")
            object.__setattr__(self, "painted", p)

    @classmethod
    def from_instruction(cls, image: np.ndarray, current_report: str, instruction: str, **kw) -> WhatIfRequest:
        return cls(image=image, current_report=current_report,
                   edited_report=apply_instruction(current_report, instruction), **kw)


@dataclass
class Variant:
    seed: int
    image: np.ndarray  # uint8 (S, S), model space: the original plus the model's change (composite.py), shown
    decoded: np.ndarray  # uint8 (S, S): the resampled tokens decoded, the model's own image
    difference: np.ndarray  # float32 (S, S): image - original
    preservation: Preservation  # image vs the original, outside/inside the pixel region
    elapsed_s: float
    head_score: float | None = None  # how far the finding head moved the asked way (ranking.py); None: no head
    head_before: dict[str, float] = field(default_factory=dict)  # the edited findings' head probabilities on the
    head_after: dict[str, float] = field(default_factory=dict)  # original's reconstruction and on this variant
    failure: str = ""  # why this variant must not be shown as a result (honesty.py); "" when it may

    def words(self, signs: dict[str, float]) -> str:
        """How far the engine's reading moved, in words (honesty.variant_words); '' without a head."""
        return variant_words(self.head_before, self.head_after, signs) if self.head_after else ""


@dataclass
class WhatIfResult:
    original: np.ndarray  # uint8 (S, S): the input as the model sees it (padded, resized)
    reconstruction: np.ndarray  # uint8 (S, S): the original's tokens decoded (what the model's change is taken from)
    token_mask: np.ndarray  # bool (g, g): the resampled tokens
    pixel_mask: np.ndarray  # bool (S, S)
    weight: np.ndarray  # float32 (S, S): how much of the model's change each pixel shows (composite.edit_weight)
    edit: ReportEdit
    scores: RegionScores | None  # None when the user painted the region
    variants: list[Variant] = field(default_factory=list)
    control: Variant | None = None  # the same region resampled under the unedited report (if asked)
    head_guidance: float = 0.0  # how strongly the finding head steered the variants (0: it did not)
    signs: dict[str, float] = field(default_factory=dict)  # the head's findings the edit moves: +1 up, -1 down

    @property
    def shown_variants(self) -> list[Variant]:
        """The variants that may be shown as a result (failed ones are reported, not shown)."""
        return [v for v in self.variants if not v.failure]

    @property
    def failed_variants(self) -> list[Variant]:
        return [v for v in self.variants if v.failure]


def _check_change(edit: ReportEdit, allow: bool) -> None:
    if not edit.changes and not allow:
        raise EditError("the edited report states the same findings as the current one; nothing to show")


def run_whatif(pipeline, request: WhatIfRequest, *, progress: Progress = None, cancel: Cancel = None,
               with_control: bool = False) -> WhatIfResult:
    """Run the what-if (see the module doc). `progress(done, total, stage)` is called between stages and
    after every sampling step; `cancel()` True raises engines.errors.JobCancelled."""
    from engines.errors import JobCancelled
    from engines.pipeline import prepare_image

    edit = diff_reports(request.current_report, request.edited_report)
    _check_change(edit, request.allow_no_change)
    steps = request.steps or pipeline.default_steps
    head_guidance = pipeline.default_head_guidance if request.head_guidance is None else request.head_guidance
    runs = len(request.seeds) + (1 if with_control else 0)
    total = 1 + runs * steps
    done = 0

    def tick(stage: str) -> None:
        if cancel is not None and cancel():
            raise JobCancelled("what-if cancelled")
        if progress is not None:
            progress(done, total, stage)

    tick("finding the region")
    original = prepare_image(np.asarray(request.image), pipeline.image_size)
    codes = pipeline.encode_image(original)
    reconstruction = pipeline.decode_tokens(codes)
    scores = None
    changed = edit_signs(edit, pipeline.model_config.findings)  # the head's findings the edit moves, +1 up / -1 down
    if request.region is not None:
        if request.region.shape != (pipeline.grid, pipeline.grid):
            raise ValueError(f"painted token mask must be ({pipeline.grid}, {pipeline.grid}), "
                             f"got {request.region.shape}")
        token_mask = request.region
    elif request.painted is not None:
        token_mask = pixel_mask_to_tokens(request.painted, pipeline.grid)
    else:
        head_region = pipeline.default_head_region if request.head_region is None else request.head_region
        if request.method == "head" and not changed:
            raise EditError("the finding head knows none of the changed findings; choose another region method")
        scores = score_region(pipeline, original, request.current_report, request.edited_report,
                              [s.text for s in edit.removed_sentences], [s.text for s in edit.added_sentences],
                              findings=edit.findings, prior_weight=request.prior_weight, head_push=changed,
                              head_weight=1.0 if request.method == "head" else head_region)
        token_mask = select_tokens(getattr(scores, request.method), request.area, request.margin)
    pixel_mask = tokens_to_pixels(token_mask, pipeline.image_size)
    weight = edit_weight(pixel_mask, feather=pipeline.image_size / pipeline.grid)
    done = 1
    signs = changed if head_guidance else {}
    result = WhatIfResult(original, reconstruction, token_mask, pixel_mask, weight, edit, scores,
                          head_guidance=head_guidance if signs else 0.0)

    def one(seed: int, report: str, stage: str) -> Variant:
        nonlocal done
        base = done

        def step_progress(k: int, n: int) -> None:
            if progress is not None:
                progress(base + k, total, stage)

        t0 = time.perf_counter()
        # Under the edited report, guidance pushes away from the current report's findings (finding-conditioned
        # weights; others ignore the contrast). The control resample (report == current) has nothing to push from.
        # The head steers towards the edit's findings; the control has no change to steer to.
        edited = report != request.current_report
        contrast = request.current_report if edited else None
        push = signs if edited and head_guidance else None
        res = pipeline.inpaint(original, token_mask, report, steps=steps, guidance=request.guidance, seed=seed,
                               contrast_report=contrast, head_push=push, head_guidance=head_guidance,
                               progress=step_progress, cancel=cancel)
        done = base + steps
        shown = transfer_edit(original, reconstruction, res.image, weight)
        v = Variant(seed, shown, res.image, difference_map(original, shown), preservation(original, shown, pixel_mask),
                    time.perf_counter() - t0)
        outside = outside_change(original, shown, weight)
        if outside > OUTSIDE_TOLERANCE:  # the acquired image must be untouched beyond the blend margin
            v.failure = (f"it changed the image outside the edited region and its margin (by up to {outside:.0f} "
                         "grey levels)")
        return v

    for i, seed in enumerate(request.seeds):
        tick(f"variant {i + 1} of {len(request.seeds)}")
        result.variants.append(one(seed, request.edited_report, f"variant {i + 1} of {len(request.seeds)}"))
    if request.rank:
        result.variants = rank_variants(pipeline, result.variants, reconstruction, edit)
    result.signs = dict(changed)
    if with_control:
        if not request.current_report.strip():
            raise EditError("a control needs the current report")
        tick("control")
        result.control = one(request.seeds[0], request.current_report, "control")
    if progress is not None:
        progress(total, total, "done")
    return result


def run_variants(pipeline, request: WhatIfRequest, seeds: Sequence[int], token_mask: np.ndarray,
                 **kw) -> WhatIfResult:
    """More variants on the region already chosen (browsing seeds keeps the region fixed)."""
    from dataclasses import replace

    return run_whatif(pipeline, replace(request, seeds=tuple(seeds), region=np.asarray(token_mask, bool)), **kw)
