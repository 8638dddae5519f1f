"""Typed results of the worker's extra jobs (explanation, what-if, similar cases: engines.worker.jobs).

The handlers build these; `to_json` is the exact dict they sent before they were typed (same keys, same
order, `scope` where the handler always sent it), so the wire and anything stored from it do not change.
The client rebuilds them at the wire's edge (engines.worker.client.typed_result) with `from_json`, which
refuses an unknown or missing field, or a field of the wrong shape, with a ResultError naming it: a reader
gets attributes it can trust or a clear error, never a half-read dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from engines.backends.results import JobResult, ResultError
from engines.worker.wire import WireError, from_wire, to_wire


def _check(kind: str, name: str, value: Any, ok: Callable[[Any], bool], what: str) -> None:
    if not ok(value):
        raise ResultError(f"a '{kind}' result's field '{name}' must be {what}, not {type(value).__name__}")


def _str_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


@dataclass(kw_only=True)
class ExtraJobResult(JobResult):
    """Base: the handler's own fields first, then `scope` and `provenance`, as the handlers' dicts had them."""

    keep_none_scope: ClassVar[bool] = False  # the handler sent "scope": None rather than leaving it out

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        tail = {k: out.pop(k) for k in ("scope", "provenance") if k in out}
        if self.keep_none_scope and self.scope is None:
            tail = {"scope": None, **tail}
        return {**out, **tail}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Any:
        if isinstance(data, dict) and "scope" in data and data["scope"] is None:
            data = {k: v for k, v in data.items() if k != "scope"}
        if isinstance(data, dict) and data.get("scope") is not None and not isinstance(data["scope"], dict):
            raise ResultError(f"a '{cls.kind}' result's field 'scope' must be a mapping, "
                              f"not {type(data['scope']).__name__}")
        try:
            return super().from_json(data)
        except ResultError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # scope of the wrong shape
            raise ResultError(f"a '{cls.kind}' result has a malformed field: {type(exc).__name__}: {exc}") from None


@dataclass(kw_only=True)
class ExplanationResult(ExtraJobResult):
    """A study's explanation (explain.worker_jobs): StudyExplanation.to_arrays as its JSON `meta` plus the
    flat arrays; `engine_key` the weights it was made with (the panel's cache key)."""

    kind: ClassVar[str] = "explanation"
    keep_none_scope: ClassVar[bool] = True
    meta: str
    arrays: dict[str, np.ndarray]
    engine_key: str = ""

    @classmethod
    def _rebuild(cls, values: dict[str, Any]) -> dict[str, Any]:
        _check(cls.kind, "meta", values.get("meta", ""), lambda v: isinstance(v, str), "text")
        _check(cls.kind, "arrays", values.get("arrays", {}), lambda v: isinstance(v, dict), "a mapping")
        _check(cls.kind, "engine_key", values.get("engine_key", ""), lambda v: isinstance(v, str), "text")
        if "arrays" in values:
            values = {**values, "arrays": {str(k): np.asarray(v) for k, v in values["arrays"].items()}}
        return values


@dataclass(kw_only=True)
class WhatIfOutput(ExtraJobResult):
    """A what-if's images (engines.counterfactual.whatif.WhatIfResult) with the input gate's decision."""

    kind: ClassVar[str] = "whatif"
    result: Any  # a WhatIfResult; on the wire its tagged form (engines.worker.wire)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "result": to_wire(self.result)}
        if self.scope is not None:
            out["scope"] = self.scope.to_dict()
        if self.provenance is not None:
            out["provenance"] = dict(self.provenance)
        return out

    @classmethod
    def _rebuild(cls, values: dict[str, Any]) -> dict[str, Any]:
        from engines.counterfactual.whatif import WhatIfResult

        if "result" not in values:
            return values  # the constructor names the missing field
        try:
            out = from_wire(values["result"])
        except (WireError, TypeError, ValueError) as exc:
            raise ResultError(f"a 'whatif' result's field 'result' cannot be read: {exc}") from None
        _check(cls.kind, "result", out, lambda v: isinstance(v, WhatIfResult), "a WhatIfResult")
        return {**values, "result": out}


@dataclass(kw_only=True)
class WhatIfWarning(ExtraJobResult):
    """Nothing ran: the edit contradicts the engine's reading (`warnings`, said to the user, who may confirm);
    `reading` is engines.reading.read_images' per-finding reading."""

    kind: ClassVar[str] = "whatif_warning"
    warnings: list[str]
    reading: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _rebuild(cls, values: dict[str, Any]) -> dict[str, Any]:
        _check(cls.kind, "warnings", values.get("warnings", []), _str_list, "a list of sentences")
        _check(cls.kind, "reading", values.get("reading", {}), lambda v: isinstance(v, dict), "a mapping")
        return {**values, "warnings": list(values["warnings"])} if "warnings" in values else values


@dataclass(kw_only=True)
class SimilarCases(ExtraJobResult):
    """Similar indexed cases, the site's first (engines.similar.index.Hit as dicts), and why an index was not
    used (`notes`, shown to the user)."""

    kind: ClassVar[str] = "similar"
    hits: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def _rebuild(cls, values: dict[str, Any]) -> dict[str, Any]:
        _check(cls.kind, "hits", values.get("hits", []),
               lambda v: isinstance(v, (list, tuple)) and all(isinstance(h, dict) for h in v), "a list of mappings")
        _check(cls.kind, "notes", values.get("notes", []), _str_list, "a list of sentences")
        return {**values, "hits": list(values.get("hits", [])), "notes": list(values.get("notes", []))}


EXTRA_RESULT_TYPES: dict[str, type[JobResult]] = {
    cls.kind: cls for cls in (ExplanationResult, WhatIfOutput, WhatIfWarning, SimilarCases)}

# the extra job kinds whose results are typed, and the result tags each may send (besides OutOfScope)
EXTRA_JOB_RESULTS: dict[str, tuple[str, ...]] = {
    "explain_study": ("explanation",), "whatif": ("whatif", "whatif_warning"), "similar": ("similar",)}
