"""Typed job requests, shared by the app (which builds them) and the worker's job handlers (which read them).

Each request type names its job kind once (`kind`), so no caller spells a kind or a parameter key by hand.
`to_params()` is the wire form a job message carries (engines.worker.protocol; arrays travel as arrays,
tuples as lists, unset optional fields are left out so the handler's default applies) and
`from_params()` rebuilds the request on the other end, refusing unknown keys with a message that names them.
The results come back as the handlers' dicts and are read by their own typed readers
(explain.worker_jobs.explanation_from_result, engines.counterfactual.worker_jobs.whatif_from_result).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="JobRequest")


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """Base of every request: `kind` is the worker's job kind."""

    kind: ClassVar[str] = ""

    def to_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_params(cls: type[R], params: dict[str, Any]) -> R:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise ValueError(f"'{cls.kind}' got unknown parameter(s): {', '.join(unknown)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        try:
            return cls(**values)
        except TypeError as exc:  # a required field is missing
            raise ValueError(f"'{cls.kind}': {exc}") from None


@dataclass(frozen=True, kw_only=True)
class GatedRequest(JobRequest):
    """A job that reads images passes the engine's input gate (engines.scope.guard): each image's DICOM
    header, and whether the user overrode the gate."""

    images: tuple[Any, ...]
    headers: tuple[dict[str, Any], ...] = ()
    override_scope: bool = False


@dataclass(frozen=True, kw_only=True)
class DraftRequest(GatedRequest):
    kind: ClassVar[str] = "draft"
    seed: int = 0
    steps: int | None = None
    guidance: float | None = None
    mode: str | None = None
    section_order: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class AnswerRequest(GatedRequest):
    kind: ClassVar[str] = "answer"
    question: str
    seed: int = 0
    steps: int | None = None


@dataclass(frozen=True, kw_only=True)
class RegionMapRequest(GatedRequest):
    """The backend's own maps for a text on an image (the question panel's region map)."""

    kind: ClassVar[str] = "explain"
    text: str


@dataclass(frozen=True, kw_only=True)
class ExplainStudyRequest(GatedRequest):
    """Sentence-by-sentence explanation of a report on a study (explain.worker_jobs)."""

    kind: ClassVar[str] = "explain_study"
    text: str
    draft: Any = None  # the draft's wire form (engines.worker.wire.to_wire), or None
    k_drafts: int = 4
    steps: int | None = None
    ig_steps: int = 16
    seed: int = 0


@dataclass(frozen=True, kw_only=True)
class WhatIfJob(JobRequest):
    """A counterfactual (engines.counterfactual.worker_jobs); `request` is a WhatIfRequest's wire form."""

    kind: ClassVar[str] = "whatif"
    request: Any
    confirmed: bool = False
    with_control: bool = False
    headers: tuple[dict[str, Any], ...] = ()
    override_scope: bool = False


@dataclass(frozen=True, kw_only=True)
class CaseIndexes(JobRequest):
    """Where similar cases are looked up: the site's folder or PostgreSQL URL, and a development index."""

    cases_dir: str = ""
    cases_url: str = ""
    dev_index: str = ""


@dataclass(frozen=True, kw_only=True)
class SimilarRequest(CaseIndexes):
    kind: ClassVar[str] = "similar"
    images: tuple[Any, ...]
    k: int = 5
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class IndexCaseRequest(CaseIndexes):
    """Add a signed study to the site's case index."""

    kind: ClassVar[str] = "index_case"
    images: tuple[Any, ...]
    case_id: str = ""  # required: the handler says so in the user's words
    findings: str = ""
    impression: str = ""
    title: str = ""
    image_ref: str = ""
