"""The gate where the model runs: one InputGate per loaded backend, and the job-side rule that an
out-of-scope job returns its scope decision instead of a result unless the user overrode it.

What feeds the gate is every gated request's (engines.worker.requests.GatedRequest): `headers` (one dict of
engines.scope.header.HEADER_KEYS per image, from `header_of`; empty for pixels without a file) and
`override_scope` (True: the user asked to run the job although it is out of scope; the decision then
records the override).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engines.backends.results import JobResult, OutOfScope, Refused, RegionMaps, TextOutput
from engines.scope.gate import InputGate, ScopeDecision
from engines.scope.stats import ScopeStatistics, ScopeStatisticsError
from engines.worker.requests import (
    AnswerRequest,
    DraftRequest,
    GatedRequest,
    InpaintRequest,
    JobRequest,
    RegionMapRequest,
    SynthesiseRequest,
)

OUT_OF_SCOPE = OutOfScope.kind  # the result kind of a job the gate stopped


def gate_for(backend: Any) -> InputGate:
    """The backend's gate, built once: its own `embed_images`/`embedding_name` when it has them (another
    reader), else the built-in engine's embedding; statistics from the weights folder."""
    gate = getattr(backend, "_input_gate", None)
    if gate is not None:
        return gate
    gate = build_gate(backend)
    try:
        backend._input_gate = gate
    except AttributeError:
        pass
    return gate


def build_gate(backend: Any) -> InputGate:
    """The backend's own embedding when it gives one, else the built-in engine's embedding that the shipped
    statistics were fitted on (the finding reader's features or the backbone's image tokens: whichever was
    measured to separate out-of-scope images better, docs/ai_limits.md)."""
    embed = getattr(backend, "embed_images", None)
    name = str(getattr(backend, "embedding_name", "") or "")
    folder = getattr(backend, "scope_path", None) or getattr(backend, "path", None)
    pipe = getattr(backend, "pipe", None)
    if embed is None and (pipe is None or not hasattr(pipe, "model_config")):
        return InputGate(unavailable=f"the '{getattr(backend, 'name', '?')}' engine gives no image embedding")
    folder = folder or getattr(pipe, "path", None)
    if folder is None:
        return InputGate(unavailable="the engine has no weights folder to hold input-gate statistics")
    try:
        stats = ScopeStatistics.load(Path(folder))
    except ScopeStatisticsError as exc:
        return InputGate(unavailable=str(exc))
    if embed is None:
        from engines.scope.embedding import medim_embedder, medim_embedders

        offered = medim_embedders(pipe)
        name, embed = (stats.embedding, offered[stats.embedding]) if stats.embedding in offered \
            else medim_embedder(pipe)  # the gate then says the statistics do not fit the embedding
    return InputGate(embed, stats, name)


def check_job(backend: Any, images: Sequence[np.ndarray], headers: Sequence[Mapping[str, Any]] = (),
              override: bool = False) -> ScopeDecision:
    """The scope decision for a job's images, with the job's headers and override flag."""
    return gate_for(backend).check(list(images), list(headers) or None, override=bool(override))


def stopped(decision: ScopeDecision) -> bool:
    """True when the job must not run: out of scope and not overridden."""
    return not decision.in_scope and not decision.override


def run_gated(backend: Any, request: GatedRequest, progress: Any = None, cancel: Any = None) -> JobResult:
    """Run a backend job that reads images (draft, answer, inpaint, explain) behind the gate, as the worker
    and `radstation engine draft|ask` do: a question the engine has no basis for is refused before any image
    is read (`Refused`); an out-of-scope input without override returns the decision alone (`OutOfScope`);
    otherwise the job runs on the images in scope (all under an override) and its result carries the
    decision (`scope`), with `images_used` indexing the images it was given."""
    from engines.backends import BackendError
    from engines.backends.base import check_images

    kind = request.kind
    if kind not in getattr(backend, "capabilities", frozenset({kind})):
        raise backend._unsupported(kind)
    if isinstance(request, AnswerRequest):
        if not request.question.strip():
            raise BackendError("the question is empty")
        asked = backend.question_scope(request.question)
        if not asked.in_scope:
            return Refused(reason=str(asked.reason), can_answer=str(asked.can_answer))
    images = list(request.gated_images())
    if not images:
        raise BackendError("no image given: open a study with at least one image")
    decision = check_job(backend, check_images(images), request.headers, request.override_scope)
    if stopped(decision):
        return OutOfScope(scope=decision)
    used = decision.used
    kept = [images[i] for i in used]
    result = run_backend(backend, request.with_images(tuple(kept)), progress, cancel)
    if isinstance(result, TextOutput):
        result.images_used = [used[i] for i in result.images_used if 0 <= i < len(used)]
    result.scope = decision
    return result


def run_backend(backend: Any, request: JobRequest, progress: Any = None, cancel: Any = None) -> JobResult:
    """The backend method a request names, on the images it holds, without the gate: what calling
    `backend.draft(...)` in-process does, and what run_gated calls on the images it let through."""
    from engines.backends import BackendError

    common = {"progress": progress, "cancel": cancel}
    if isinstance(request, DraftRequest):
        # sentence-drafting options reach the engines that take them (engines.backends.diffusion)
        accepted = inspect.signature(backend.draft).parameters
        options = {k: getattr(request, k) for k in ("mode", "section_order")
                   if getattr(request, k) is not None and k in accepted}
        if "section_order" in options:
            options["section_order"] = list(options["section_order"])
        return backend.draft(list(request.images), steps=request.steps, guidance=request.guidance,
                             seed=request.seed, **common, **options)
    if isinstance(request, AnswerRequest):
        return backend.answer(list(request.images), request.question, steps=request.steps, seed=request.seed,
                              **common)
    if isinstance(request, InpaintRequest):
        return backend.inpaint(request.image, request.token_mask, request.report, steps=request.steps,
                               guidance=request.guidance, seed=request.seed, **common)
    if isinstance(request, RegionMapRequest):
        return RegionMaps(maps=dict(backend.explain(list(request.images), request.text, **common)))
    if isinstance(request, SynthesiseRequest):
        return backend.synthesise(request.report, steps=request.steps, guidance=request.guidance,
                                  seed=request.seed, **common)
    raise BackendError(f"the engine does not run {request.kind!r} jobs")
