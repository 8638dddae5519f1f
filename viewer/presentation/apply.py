"""Turn what a GSPS says about an image into the viewer's display state (window, polarity, orientation, area).

Works on any object with ViewState's attributes (viewer.models.view_state), so it stays free of Qt.
"""

from __future__ import annotations

from typing import Any

from viewer.presentation.gsps import DisplayedArea, ImagePresentation


def apply_presentation(state: Any, pres: ImagePresentation, monochrome1: bool, widget_w: float,
                       widget_h: float) -> None:
    """Set `state` as `pres` says. Polarity: INVERSE means low values white; a MONOCHROME1 image already
    shows that way, so the viewer's extra inversion is the difference of the two."""
    state.reset()
    if pres.window is not None:
        state.window = pres.window
    if pres.inverse is not None:
        state.invert = pres.inverse != monochrome1
    state.rotation, state.flip_h, state.flip_v = pres.rotation % 4, pres.flip_h, False
    fit_area(state, pres.area, widget_w, widget_h)


def fit_area(state: Any, area: DisplayedArea | None, widget_w: float, widget_h: float) -> None:
    """Zoom and pan `state` so that `area` shows as its size mode says, centred in the widget."""
    if area is None or widget_w < 2 or widget_h < 2:
        return
    whole = (area.x0 <= 0 and area.y0 <= 0 and area.x1 >= state.image_width and area.y1 >= state.image_height)
    if whole and area.mode != "MAGNIFY":
        state.fit_to_window()  # the whole image, fitted as the header display
        return
    aw, ah = max(1.0, area.x1 - area.x0), max(1.0, area.y1 - area.y0)
    if state.rotation % 2:
        aw, ah = ah, aw
    if area.mode == "MAGNIFY" and area.magnification:
        zoom = float(area.magnification)
    else:  # SCALE TO FIT; TRUE SIZE needs the monitor's physical pixel size, which Qt does not know reliably
        zoom = min(widget_w / aw, widget_h / ah)
    state.pan_x = state.pan_y = 0.0
    state.zoom, state.fit = max(1e-3, zoom), False
    cx, cy = (area.x0 + area.x1) / 2.0, (area.y0 + area.y1) / 2.0
    wx, wy = state.image_to_widget(cx, cy, widget_w, widget_h)
    state.pan_x, state.pan_y = widget_w / 2.0 - wx, widget_h / 2.0 - wy
