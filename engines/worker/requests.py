"""Typed job requests, shared by the app (which builds them) and the worker's job handlers (which read them).

Each request type names its job kind once (`kind`), so no caller spells a kind or a parameter key by hand.
`to_params()` is the wire form a job message carries (engines.worker.protocol; arrays travel as arrays,
tuples as lists, unset optional fields are left out so the handler's default applies) and
`from_params()` rebuilds the request on the other end. A request checks itself when it is made, on either
end: an unknown or missing parameter, or a value of the wrong type, is a RequestError that names the job,
the parameter and what it must be (the worker answers it as a `bad_request`, never as an engine crash).
The backend's own jobs (`backend_request`) return typed results (engines.backends.results); the extra kinds
(explanation, what-if, similar cases) return theirs (engines.worker.job_results).
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, TypeVar, Union

R = TypeVar("R", bound="JobRequest")
G = TypeVar("G", bound="GatedRequest")


class RequestError(ValueError):
    """A job request that cannot be run as given: the message names the job kind and the parameter."""


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """Base of every request: `kind` is the worker's job kind."""

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list) and not _is(value, hints[f.name]):  # the wire's list for a tuple field
                value = tuple(value)
                object.__setattr__(self, f.name, value)
            if not _is(value, hints[f.name]):
                raise RequestError(f"'{self.kind}': {f.name} must be {_describe(hints[f.name])}, "
                                   f"not {type(value).__name__} {_short(value)}")

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
        if not isinstance(params, dict):
            raise RequestError(f"'{cls.kind}': the parameters must be a mapping, not {type(params).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise RequestError(f"'{cls.kind}' got unknown parameter(s): {', '.join(map(str, unknown))}")
        try:
            return cls(**params)
        except TypeError as exc:  # a required field is missing
            raise RequestError(f"'{cls.kind}': {exc}") from None


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is(value: Any, hint: Any) -> bool:
    """Whether `value` fits the field's annotation (the few shapes requests use: scalars, optionals,
    homogeneous tuples, dicts, Any). Integers pass as floats; booleans pass only as booleans."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_is(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, tuple) and all(_is(v, args[0]) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool) or type(value).__name__ == "bool_"  # numpy's bool
    if isinstance(value, bool):
        return False
    if hint is int:
        return isinstance(value, numbers.Integral)
    if hint is float:
        return isinstance(value, numbers.Real)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if hint is type(None):
        return "unset"
    if origin is tuple:
        return f"a list of {_describe(args[0])}" if args[0] is not Any else "a list"
    names = {int: "an integer", float: "a number", str: "a text", bool: "true or false", dict: "a mapping"}
    return names.get(origin or hint, getattr(hint, "__name__", str(hint)))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True, kw_only=True)
class GatedRequest(JobRequest):
    """A job that reads images passes the engine's input gate (engines.scope.guard): each image's DICOM
    header, and whether the user overrode the gate. `gated_images()` are the images the gate checks and
    `with_images()` the same request on the images it let through."""

    headers: tuple[dict[str, Any], ...] = ()
    override_scope: bool = False

    def gated_images(self) -> tuple[Any, ...]:
        return tuple(getattr(self, "images"))  # noqa: B009 - every subclass but inpaint declares `images`

    def with_images(self: G, kept: tuple[Any, ...]) -> G:
        return dataclasses.replace(self, images=tuple(kept))  # type: ignore[call-arg]


@dataclass(frozen=True, kw_only=True)
class DraftRequest(GatedRequest):
    kind: ClassVar[str] = "draft"
    images: tuple[Any, ...]
    seed: int = 0
    steps: int | None = None
    guidance: float | None = None
    mode: str | None = None
    section_order: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class AnswerRequest(GatedRequest):
    kind: ClassVar[str] = "answer"
    images: tuple[Any, ...]
    question: str
    seed: int = 0
    steps: int | None = None


@dataclass(frozen=True, kw_only=True)
class InpaintRequest(GatedRequest):
    """Regenerate the masked tokens of one image for a report."""

    kind: ClassVar[str] = "inpaint"
    image: Any
    token_mask: Any  # bool array over the image tokens
    report: str = ""
    steps: int | None = None
    guidance: float | None = None
    seed: int = 0

    def gated_images(self) -> tuple[Any, ...]:
        return (self.image,)

    def with_images(self, kept: tuple[Any, ...]) -> InpaintRequest:
        return dataclasses.replace(self, image=kept[0])


@dataclass(frozen=True, kw_only=True)
class SynthesiseRequest(JobRequest):
    """An image from a report; reads no image, so nothing to gate."""

    kind: ClassVar[str] = "synthesise"
    report: str
    steps: int | None = None
    guidance: float | None = None
    seed: int = 0


@dataclass(frozen=True, kw_only=True)
class RegionMapRequest(GatedRequest):
    """The backend's own maps for a text on an image (the question panel's region map)."""

    kind: ClassVar[str] = "explain"
    images: tuple[Any, ...]
    text: str


@dataclass(frozen=True, kw_only=True)
class ExplainStudyRequest(GatedRequest):
    """Sentence-by-sentence explanation of a report on a study (explain.worker_jobs)."""

    kind: ClassVar[str] = "explain_study"
    images: tuple[Any, ...]
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


BACKEND_REQUESTS: dict[str, type[JobRequest]] = {
    cls.kind: cls for cls in (DraftRequest, AnswerRequest, SynthesiseRequest, InpaintRequest, RegionMapRequest)}


def backend_request(kind: str, params: dict[str, Any]) -> JobRequest:
    """The typed request of one of the backend's own job kinds (engines.backends.JOB_KINDS) from its wire
    params: what the worker and the served replica do with a job message before anything runs."""
    cls = BACKEND_REQUESTS.get(kind)
    if cls is None:
        raise RequestError(f"unknown job kind {kind!r}; the engine runs {', '.join(BACKEND_REQUESTS)}")
    return cls.from_params(params)
