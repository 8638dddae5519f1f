"""Dataclass results across the worker boundary: plain JSON-able dicts tagged with their class.

Richer results (an explanation, a what-if) are nested dataclasses holding arrays. They travel as
{"__dataclass__": "module:Class", field: value, ...}; only dataclasses defined in this project's Qt-free
packages are rebuilt, by keyword construction, so a message can never make the app run foreign code.
Fields annotated as tuples come back as tuples (JSON has only lists), so frozen results stay hashable.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import numpy as np

ALLOWED_PACKAGES = ("engines", "explain")
TAG = "__dataclass__"


class WireError(ValueError):
    """A tagged object that may not or cannot be rebuilt."""


def to_wire(obj: Any) -> Any:
    """Dataclasses become tagged dicts, recursively; arrays, scalars and containers pass through."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        out: dict[str, Any] = {TAG: f"{cls.__module__}:{cls.__qualname__}"}
        for f in dataclasses.fields(obj):
            out[f.name] = to_wire(getattr(obj, f.name))
        return out
    if isinstance(obj, dict):
        return {str(k): to_wire(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_wire(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _resolve(tag: str) -> type:
    module, _, name = tag.partition(":")
    if module.split(".")[0] not in ALLOWED_PACKAGES or not name or "." in name:
        raise WireError(f"refusing to rebuild {tag!r}: not a result type of this project")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise WireError(f"unknown result type {tag!r}") from exc
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise WireError(f"{tag!r} is not a dataclass")
    return cls


def from_wire(obj: Any) -> Any:
    """Inverse of to_wire."""
    if isinstance(obj, dict):
        if TAG not in obj:
            return {k: from_wire(v) for k, v in obj.items()}
        cls = _resolve(str(obj[TAG]))
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in obj:
                continue
            value = from_wire(obj[f.name])
            if isinstance(value, list) and str(f.type).replace(" ", "").startswith("tuple"):
                value = tuple(value)
            kwargs[f.name] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise WireError(f"cannot rebuild {obj[TAG]}: {exc}") from exc
    if isinstance(obj, list):
        return [from_wire(v) for v in obj]
    return obj
