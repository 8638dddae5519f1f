"""How an image was shown when it was annotated: window, inversion, rotation/flip and the visible area.

A plain record the viewer's state is turned into (`display_from_view`), so the presentation-state writer
never needs Qt and tests can state a display directly. Image coordinates follow viewer.measure.shapes
(x = column, y = row, pixel (c, r) covers [c, c+1) x [r, r+1)), which is DICOM's PIXEL convention too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from viewer.imaging.window import WindowLevel

# (rotation clockwise in quarter turns, horizontal flip applied first) -> the 2x2 screen matrix
# [a b; c d] with screen = M @ image (y down). DICOM's Spatial Transformation rotates first, then flips
# horizontally (PS3.3 C.10.6.1.1), as the viewer does; a vertical flip is a horizontal one plus 180 degrees.
_ROT = {0: (1, 0, 0, 1), 1: (0, -1, 1, 0), 2: (-1, 0, 0, -1), 3: (0, 1, -1, 0)}


def _mul(m: tuple[int, ...], n: tuple[int, ...]) -> tuple[int, ...]:
    a, b, c, d = m
    e, f, g, h = n
    return (a * e + b * g, a * f + b * h, c * e + d * g, c * f + d * h)


def dicom_transform(rotation: int, flip_h: bool, flip_v: bool) -> tuple[int, bool]:
    """The viewer's 'rotate, then flip on screen' as DICOM's (Image Rotation degrees, Image Horizontal Flip)."""
    screen = _mul((-1 if flip_h else 1, 0, 0, -1 if flip_v else 1), _ROT[rotation % 4])
    for quarter, flip in ((q, f) for f in (False, True) for q in range(4)):
        if _mul((-1 if flip else 1, 0, 0, 1), _ROT[quarter]) == screen:
            return quarter * 90, flip
    raise AssertionError("every rotation/flip combination has a DICOM equivalent")


def viewer_transform(rotation_deg: int, horizontal_flip: bool) -> tuple[int, bool, bool]:
    """DICOM's (Image Rotation, Image Horizontal Flip) as the viewer's (rotation, flip_h, flip_v)."""
    return (int(rotation_deg) // 90) % 4, bool(horizontal_flip), False


@dataclass(frozen=True)
class DisplayState:
    """What the reader saw: None/False everywhere means the image header's defaults."""

    window: WindowLevel | None = None  # in modality units (HU on CT)
    invert: bool = False
    rotation: int = 0  # quarter turns clockwise, as the viewer counts them
    flip_h: bool = False
    flip_v: bool = False
    area: tuple[float, float, float, float] | None = None  # visible (x0, y0, x1, y1) in image pixels

    @property
    def dicom_rotation(self) -> tuple[int, bool]:
        return dicom_transform(self.rotation, self.flip_h, self.flip_v)


def display_from_view(state: Any, widget_w: float, widget_h: float) -> DisplayState:
    """The DisplayState of a viewer.models.view_state.ViewState shown in a widget of the given size."""
    area = None
    if not state.fit or state.pan_x or state.pan_y:
        corners = [state.widget_to_image(x, y, widget_w, widget_h)
                   for x, y in ((0, 0), (widget_w, 0), (0, widget_h), (widget_w, widget_h))]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        area = (min(xs), min(ys), max(xs), max(ys))
    return DisplayState(window=state.window, invert=bool(state.invert), rotation=int(state.rotation) % 4,
                        flip_h=bool(state.flip_h), flip_v=bool(state.flip_v), area=area)
