"""Measurement shapes in image pixel coordinates, as plain JSON-able records.

Coordinates are continuous image coordinates (x = column, y = row, floats): pixel (row r, column c)
covers x in [c, c+1) and y in [r, r+1), so its center is (c + 0.5, r + 0.5). The widget converts mouse
positions into this space; everything here stays independent of zoom, pan, flip and rotation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

Point = tuple[float, float]

__all__ = ["Angle", "Annotation", "Arrow", "Distance", "EllipseROI", "Measurement", "Note", "Point", "RectROI",
           "Shape", "arrow_head", "is_annotation", "measurement_from_dict"]


def _point(value: Any, name: str) -> Point:
    try:
        x, y = value
        return float(x), float(y)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an (x, y) pair of numbers, got {value!r}") from exc


@dataclass(kw_only=True)
class _Shape:
    KIND: ClassVar[str] = ""
    POINTS: ClassVar[tuple[str, ...]] = ()

    frame: int = 0
    label: str = ""
    kind: str = field(init=False)

    def __post_init__(self) -> None:
        self.kind = self.KIND
        for name in self.POINTS:
            setattr(self, name, _point(getattr(self, name), name))
        self.frame = int(self.frame)

    def points(self) -> list[Point]:
        return [getattr(self, name) for name in self.POINTS]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "frame": self.frame, "label": self.label}
        for name in self.POINTS:
            out[name] = list(getattr(self, name))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]):  # noqa: ANN206 - returns the subclass
        if data.get("kind") != cls.KIND:
            raise ValueError(f"expected kind {cls.KIND!r}, got {data.get('kind')!r}")
        missing = [name for name in cls.POINTS if name not in data]
        if missing:
            raise ValueError(f"{cls.KIND} record is missing {', '.join(missing)}")
        kwargs = {name: data[name] for name in cls.POINTS}
        return cls(**kwargs, frame=int(data.get("frame", 0)), label=str(data.get("label", "")))


@dataclass
class Distance(_Shape):
    """A straight line between two points."""

    KIND: ClassVar[str] = "distance"
    POINTS: ClassVar[tuple[str, ...]] = ("p0", "p1")
    p0: Point = (0.0, 0.0)
    p1: Point = (0.0, 0.0)


@dataclass
class Angle(_Shape):
    """The angle at `vertex` between the rays to `p0` and `p1` (0-180 degrees)."""

    KIND: ClassVar[str] = "angle"
    POINTS: ClassVar[tuple[str, ...]] = ("p0", "vertex", "p1")
    p0: Point = (0.0, 0.0)
    vertex: Point = (0.0, 0.0)
    p1: Point = (0.0, 0.0)


@dataclass
class RectROI(_Shape):
    """An axis-aligned rectangle given by two opposite corners."""

    KIND: ClassVar[str] = "rect"
    POINTS: ClassVar[tuple[str, ...]] = ("p0", "p1")
    p0: Point = (0.0, 0.0)
    p1: Point = (0.0, 0.0)


@dataclass
class EllipseROI(_Shape):
    """The ellipse inscribed in the axis-aligned rectangle with corners `p0`, `p1`."""

    KIND: ClassVar[str] = "ellipse"
    POINTS: ClassVar[tuple[str, ...]] = ("p0", "p1")
    p0: Point = (0.0, 0.0)
    p1: Point = (0.0, 0.0)


@dataclass
class Arrow(_Shape):
    """An arrow pointing at `tip` from `tail`; its `label` (optional) is written at the tail."""

    KIND: ClassVar[str] = "arrow"
    POINTS: ClassVar[tuple[str, ...]] = ("tip", "tail")
    tip: Point = (0.0, 0.0)
    tail: Point = (0.0, 0.0)


@dataclass
class Note(_Shape):
    """Free text on the image: `label` is the text, its top-left corner at `anchor`."""

    KIND: ClassVar[str] = "text"
    POINTS: ClassVar[tuple[str, ...]] = ("anchor",)
    anchor: Point = (0.0, 0.0)


Measurement = Distance | Angle | RectROI | EllipseROI
# annotations point at or name something; they measure nothing (no value, no statistics)
Annotation = Arrow | Note
Shape = Measurement | Annotation
_KINDS: dict[str, type[_Shape]] = {cls.KIND: cls for cls in (Distance, Angle, RectROI, EllipseROI, Arrow, Note)}


def is_annotation(shape: object) -> bool:
    return isinstance(shape, Arrow | Note)


def arrow_head(tip: Point, tail: Point, length: float, spread_deg: float = 25.0) -> tuple[Point, Point]:
    """The two barb ends of an arrowhead of `length` at `tip` (in whatever space the points are in)."""
    dx, dy = tail[0] - tip[0], tail[1] - tip[1]
    norm = math.hypot(dx, dy)
    if norm == 0:
        return tip, tip
    ux, uy = dx / norm, dy / norm
    out = []
    for sign in (1.0, -1.0):
        a = math.radians(spread_deg) * sign
        rx, ry = ux * math.cos(a) - uy * math.sin(a), ux * math.sin(a) + uy * math.cos(a)
        out.append((tip[0] + rx * length, tip[1] + ry * length))
    return out[0], out[1]


def measurement_from_dict(data: dict[str, Any]) -> Shape:
    """Rebuild any shape from its `to_dict()` record; ValueError on an unknown or broken record."""
    if not isinstance(data, dict):
        raise ValueError(f"a measurement record must be a dict, got {type(data).__name__}")
    cls = _KINDS.get(str(data.get("kind")))
    if cls is None:
        raise ValueError(f"unknown measurement kind {data.get('kind')!r}; expected one of {sorted(_KINDS)}")
    return cls.from_dict(data)  # type: ignore[return-value]
