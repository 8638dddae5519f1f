"""The gate where the model runs: one InputGate per loaded backend, and the job-side rule that an
out-of-scope job returns its scope decision instead of a result unless the user overrode it.

Job params that feed the gate: `headers` (one dict of engines.scope.header.HEADER_KEYS per image, from
`header_of`; missing for pixels without a file) and `override_scope` (True: the user asked to run the job
although it is out of scope; the decision then records the override).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engines.scope.gate import InputGate, ScopeDecision
from engines.scope.stats import ScopeStatistics, ScopeStatisticsError

OUT_OF_SCOPE = "out_of_scope"  # the result kind of a job the gate stopped


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


def check_job(backend: Any, images: Sequence[np.ndarray], params: Mapping[str, Any]) -> ScopeDecision:
    """The scope decision for a job's images, with the job's headers and override flag."""
    headers = params.get("headers")
    if headers is not None and not isinstance(headers, list | tuple):
        headers = [headers]
    return gate_for(backend).check(list(images), headers, override=bool(params.get("override_scope", False)))


def stopped(decision: ScopeDecision) -> bool:
    """True when the job must not run: out of scope and not overridden."""
    return not decision.in_scope and not decision.override


def out_of_scope_result(decision: ScopeDecision) -> dict[str, Any]:
    """What a stopped job returns: no draft, answer, map or image; only why."""
    return {"kind": OUT_OF_SCOPE, "text": "", "scope": decision.to_dict(), "message": decision.summary()}


def run_gated(backend: Any, kind: str, p: Mapping[str, Any], progress: Any = None, cancel: Any = None
              ) -> dict[str, Any]:
    """Run a backend job that reads images (draft, answer, inpaint, explain) behind the gate, as the worker
    and `radstation engine draft|ask` do: a question the engine has no basis for is refused before any image
    is read (`kind: refused`); an out-of-scope input without override returns the decision alone
    (`kind: out_of_scope`); otherwise the job runs on the images in scope (all under an override) and its
    result carries the decision (`scope`), with `images_used` indexing the images it was given."""
    from engines.backends import BackendError
    from engines.backends.base import check_images

    common = {"progress": progress, "cancel": cancel}
    if kind not in getattr(backend, "capabilities", frozenset({kind})):
        raise backend._unsupported(kind)
    if kind == "answer":
        if not str(p.get("question", "")).strip():
            raise BackendError("the question is empty")
        asked = backend.question_scope(str(p.get("question", "")))
        if not asked.in_scope:
            return {"kind": "refused", "text": "", "reason": asked.reason, "can_answer": asked.can_answer}
    images = [p["image"]] if kind == "inpaint" else list(p.get("images") or [])
    if not images:
        raise BackendError("no image given: open a study with at least one image")
    decision = check_job(backend, check_images(images), p)
    if stopped(decision):
        return out_of_scope_result(decision)
    used = decision.used
    kept = [images[i] for i in used]
    seed = int(p.get("seed", 0))
    if kind == "draft":
        # sentence-drafting options reach the engines that take them (engines.backends.diffusion)
        accepted = inspect.signature(backend.draft).parameters
        options = {k: p[k] for k in ("mode", "section_order") if p.get(k) is not None and k in accepted}
        result = backend.draft(kept, steps=p.get("steps"), guidance=p.get("guidance"), seed=seed, **common,
                               **options).to_dict()
    elif kind == "answer":
        result = backend.answer(kept, str(p.get("question", "")), steps=p.get("steps"), seed=seed, **common).to_dict()
    elif kind == "inpaint":
        result = backend.inpaint(kept[0], p["token_mask"], str(p.get("report", "")), steps=p.get("steps"),
                                 guidance=p.get("guidance"), seed=seed, **common).to_dict()
    elif kind == "explain":
        result = {"kind": "maps", "maps": backend.explain(kept, str(p.get("text", "")), **common)}
    else:
        raise BackendError(f"unknown gated job kind {kind!r}")
    if "images_used" in result:
        result["images_used"] = [used[i] for i in result["images_used"] if 0 <= i < len(used)]
    result["scope"] = decision.to_dict()
    return result
