"""Paints a presentation state's graphics and text, and the key image mark, over a viewport's image.

Geometry comes in through `to_widget` (image point -> widget point, the viewport's ViewState matrix), so the
annotations follow zoom, pan, rotation and flips exactly as the image does. DISPLAY-unit items are placed
as fractions of the displayed area's rectangle on screen (PS3.3 C.10.5.1.2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetricsF, QPainter, QPainterPath, QPen

from viewer.presentation.gsps import DEFAULT_COLOR, Graphic, ImagePresentation, TextNote

Point = tuple[float, float]
KEY_COLOR = QColor(255, 215, 0)


def _mapper(to_widget: Callable[[Point], Point], area: QRectF) -> Callable[[Point, str], QPointF]:
    def place(pt: Point, units: str) -> QPointF:
        if units == "DISPLAY":
            return QPointF(area.left() + pt[0] * area.width(), area.top() + pt[1] * area.height())
        return QPointF(*to_widget(pt))
    return place


def paint_presentation(p: QPainter, pres: ImagePresentation, to_widget: Callable[[Point], Point], area: QRectF,
                       layer_colors: dict[str, tuple[int, int, int]]) -> None:
    """Draw every graphic and text object of `pres`; `area` is the displayed area on screen."""
    place = _mapper(to_widget, area)
    p.save()
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    for g in pres.graphics:
        color = QColor(*layer_colors.get(g.layer, DEFAULT_COLOR))
        _paint_graphic(p, g, [place(q, g.units) for q in g.points], color)
    for t in pres.texts:
        _paint_text(p, t, place, QColor(*layer_colors.get(t.layer, DEFAULT_COLOR)))
    p.restore()


def _paint_graphic(p: QPainter, g: Graphic, pts: Sequence[QPointF], color: QColor) -> None:
    p.setPen(QPen(color, 1.5))
    fill = QColor(color)
    fill.setAlpha(70)
    p.setBrush(QBrush(fill) if g.filled else Qt.BrushStyle.NoBrush)
    if g.kind == "POINT":
        for q in pts:
            p.drawLine(q + QPointF(-4, 0), q + QPointF(4, 0))
            p.drawLine(q + QPointF(0, -4), q + QPointF(0, 4))
    elif g.kind == "CIRCLE" and len(pts) >= 2:
        r = math.hypot(pts[1].x() - pts[0].x(), pts[1].y() - pts[0].y())
        p.drawEllipse(pts[0], r, r)
    elif g.kind == "ELLIPSE" and len(pts) >= 4:
        a0, a1, b0, b1 = pts[:4]
        centre = (a0 + a1) / 2
        major = math.hypot(a1.x() - a0.x(), a1.y() - a0.y()) / 2
        minor = math.hypot(b1.x() - b0.x(), b1.y() - b0.y()) / 2
        angle = math.degrees(math.atan2(a1.y() - a0.y(), a1.x() - a0.x()))
        p.save()
        p.translate(centre)
        p.rotate(angle)
        p.drawEllipse(QPointF(0, 0), major, minor)
        p.restore()
    else:  # POLYLINE; INTERPOLATED drawn through its points as a smooth quadratic path
        path = QPainterPath(pts[0])
        if g.kind == "INTERPOLATED" and len(pts) > 2:
            for k in range(1, len(pts) - 1):
                path.quadTo(pts[k], (pts[k] + pts[k + 1]) / 2)
            path.lineTo(pts[-1])
        else:
            for q in pts[1:]:
                path.lineTo(q)
        p.drawPath(path)


def _paint_text(p: QPainter, t: TextNote, place: Callable[[Point, str], QPointF], color: QColor) -> None:
    fm = QFontMetricsF(p.font())
    lines = t.text.splitlines() or [""]
    if t.box is not None:
        a, b = place(t.box[:2], t.box_units), place(t.box[2:], t.box_units)
        rect = QRectF(a, b).normalized()
        origin = QPointF(rect.left() + 2, rect.top() + fm.ascent())
    else:
        anchor = place(t.anchor, t.anchor_units)
        origin = anchor + QPointF(6, -fm.descent() - (len(lines) - 1) * fm.height() / 2)
        if t.anchor_visible:
            p.setPen(QPen(color, 1.0))
            p.drawEllipse(anchor, 2.5, 2.5)
    for k, line in enumerate(lines):
        shadow_text(p, origin + QPointF(0, k * fm.height()), line, color)


def paint_key_mark(p: QPainter, titles: Sequence[str], width: float, top: float) -> float:
    """A gold star and the selections' titles centred at `top`; returns the y below it."""
    if not titles:
        return top
    text = "\u2605 Key image: " + ", ".join(titles)
    fm = QFontMetricsF(p.font())
    x = (width - fm.horizontalAdvance(text)) / 2
    shadow_text(p, QPointF(x, top + fm.ascent()), text, KEY_COLOR)
    return top + fm.height()


def paint_caption(p: QPainter, text: str, width: float, top: float, color: QColor) -> float:
    fm = QFontMetricsF(p.font())
    shadow_text(p, QPointF((width - fm.horizontalAdvance(text)) / 2, top + fm.ascent()), text, color)
    return top + fm.height()


def shadow_text(p: QPainter, at: QPointF, text: str, color: QColor) -> None:
    """Text with a dark outline, legible on any grey level."""
    p.setPen(QColor(0, 0, 0))
    for ox, oy in ((-1, 0), (1, 0), (0, -1), (0, 1), (1, 1)):
        p.drawText(at + QPointF(ox, oy), text)
    p.setPen(color)
    p.drawText(at, text)
