"""Bridges the viewport's mouse points to viewer.measure's shapes (build, points back, label, restore).

The viewport draws with image-space points; viewer.measure owns the shapes and their maths. Keeping
the mapping here means the widget never depends on one shape's field names.
"""

from __future__ import annotations

from typing import Any

from viewer.measure import compute as _compute
from viewer.measure import shapes as _shapes
from viewer.models.tools import Tool

Point = tuple[float, float]

_KIND_TO_TOOL = {"distance": Tool.DISTANCE, "angle": Tool.ANGLE, "rect": Tool.RECT, "ellipse": Tool.ELLIPSE,
                 "arrow": Tool.ARROW, "text": Tool.TEXT}
KIND_NAMES = {"arrow": "Arrow", "text": "Text note"}


def build(tool: Tool, pts: list[Point], frame: int = 0) -> Any:
    """A measurement of `tool`'s kind from the points the user drew (2, or 3 for an angle)."""
    need = 3 if tool == Tool.ANGLE else 2
    if len(pts) < need:
        raise ValueError(f"{tool.value} needs {need} points, got {len(pts)}")
    p = [(float(x), float(y)) for x, y in pts[:need]]
    if tool == Tool.DISTANCE:
        return _shapes.Distance(p0=p[0], p1=p[1], frame=frame)
    if tool == Tool.ANGLE:  # drawn as end, vertex, end
        return _shapes.Angle(p0=p[0], vertex=p[1], p1=p[2], frame=frame)
    if tool == Tool.RECT:
        return _shapes.RectROI(p0=p[0], p1=p[1], frame=frame)
    if tool == Tool.ELLIPSE:
        return _shapes.EllipseROI(p0=p[0], p1=p[1], frame=frame)
    if tool == Tool.ARROW:  # drawn from the tip (on the finding) to the tail (where the label goes)
        return _shapes.Arrow(tip=p[0], tail=p[1], frame=frame)
    raise ValueError(f"{tool.value} is not a measurement tool")


def note(anchor: Point, text: str, frame: int = 0) -> Any:
    """A free-text note with its top-left corner at `anchor`."""
    return _shapes.Note(anchor=(float(anchor[0]), float(anchor[1])), label=text, frame=frame)


def is_annotation(m: Any) -> bool:
    """Arrows and notes: they point at or name something and measure nothing."""
    return _shapes.is_annotation(m)


def arrow_head(tip: Point, tail: Point, length: float) -> tuple[Point, Point]:
    return _shapes.arrow_head(tip, tail, length)


def kind(m: Any) -> Tool:
    return _KIND_TO_TOOL[m.kind]


def points(m: Any) -> list[Point]:
    """The shape's defining points in image pixels (rect/ellipse: two opposite corners)."""
    return [tuple(p) for p in m.points()]


def label(m: Any, image: Any, frame: int) -> str:
    """Label lines (newline-separated) from viewer.measure: mm or px + 'spacing unknown', ROI stats; '' for an
    arrow or note (their name is their text)."""
    if _shapes.is_annotation(m):
        return ""
    result = _compute.measure(m, image, frame)
    return "\n".join(result.lines) if result.lines else result.text


def from_dict(d: dict[str, Any]) -> Any:
    return _shapes.measurement_from_dict(d)
