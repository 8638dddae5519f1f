"""How one viewport shows its image: zoom, pan, rotation, flips, window, invert and position in the series.

Kept free of Qt (like napari's camera model) so the geometry and navigation can be unit-tested without a
window; the `Viewport` widget only renders what this says and forwards user input to its methods.

Coordinates: image points are (x, y) = (column, row) in pixels, pixel (c, r) covering [c, c+1) x [r, r+1).
Widget points are in device-independent widget pixels. The mapping is
    widget = centre + pan + zoom * F * R * (image - image_centre)
with R the rotation (clockwise on screen, in 90 degree steps) and F the screen-space flips, so "flip
horizontal" always mirrors left/right on screen whatever the rotation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

ZOOM_MIN = 0.02
ZOOM_MAX = 64.0


@dataclass
class ViewState:
    """Everything the user changed about how the current image is shown."""

    image_width: int = 1
    image_height: int = 1
    zoom: float = 1.0
    fit: bool = True  # zoom follows the widget size until the user zooms
    pan_x: float = 0.0
    pan_y: float = 0.0
    rotation: int = 0  # quarter turns clockwise, 0..3
    flip_h: bool = False
    flip_v: bool = False
    invert: bool = False
    window: Any = None  # a WindowLevel; None = the image header's default
    slice_index: int = 0
    slice_count: int = 1
    frame_index: int = 0
    frame_count: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    # ----- geometry -----
    def set_image_size(self, width: int, height: int) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        self.image_width, self.image_height = int(width), int(height)

    def rotated_size(self) -> tuple[int, int]:
        """Image width and height as they appear on screen after rotation."""
        if self.rotation % 2:
            return self.image_height, self.image_width
        return self.image_width, self.image_height

    def fit_zoom(self, widget_w: float, widget_h: float) -> float:
        rw, rh = self.rotated_size()
        if widget_w <= 0 or widget_h <= 0:
            return 1.0
        return max(ZOOM_MIN, min(widget_w / rw, widget_h / rh))

    def effective_zoom(self, widget_w: float, widget_h: float) -> float:
        return self.fit_zoom(widget_w, widget_h) if self.fit else self.zoom

    def matrix(self, widget_w: float, widget_h: float) -> tuple[float, float, float, float, float, float]:
        """Affine image->widget map as (m11, m12, m21, m22, dx, dy), QTransform's row-vector convention:
        wx = m11*x + m21*y + dx, wy = m12*x + m22*y + dy."""
        z = self.effective_zoom(widget_w, widget_h)
        # rotation by k quarter turns clockwise on screen (y grows downwards)
        cos_r, sin_r = [(1, 0), (0, 1), (-1, 0), (0, -1)][self.rotation % 4]
        # column-vector form: [a b; c d] applied to (x, y)
        a, b, c, d = cos_r, -sin_r, sin_r, cos_r
        fx = -1.0 if self.flip_h else 1.0
        fy = -1.0 if self.flip_v else 1.0
        a, b, c, d = fx * a * z, fx * b * z, fy * c * z, fy * d * z
        cx, cy = self.image_width / 2.0, self.image_height / 2.0
        tx = widget_w / 2.0 + self.pan_x - (a * cx + b * cy)
        ty = widget_h / 2.0 + self.pan_y - (c * cx + d * cy)
        return a, c, b, d, tx, ty

    def image_to_widget(self, x: float, y: float, widget_w: float, widget_h: float) -> tuple[float, float]:
        m11, m12, m21, m22, dx, dy = self.matrix(widget_w, widget_h)
        return m11 * x + m21 * y + dx, m12 * x + m22 * y + dy

    def widget_to_image(self, wx: float, wy: float, widget_w: float, widget_h: float) -> tuple[float, float]:
        m11, m12, m21, m22, dx, dy = self.matrix(widget_w, widget_h)
        det = m11 * m22 - m12 * m21
        u, v = wx - dx, wy - dy
        return (m22 * u - m21 * v) / det, (-m12 * u + m11 * v) / det

    # ----- zoom / pan -----
    def zoom_by(
        self, factor: float, widget_w: float, widget_h: float, anchor: tuple[float, float] | None = None
    ) -> None:
        """Zoom by `factor` keeping the image point under `anchor` (widget coords) where it is."""
        if factor <= 0 or not math.isfinite(factor):
            raise ValueError(f"zoom factor must be positive, got {factor}")
        self.set_zoom(self.effective_zoom(widget_w, widget_h) * factor, widget_w, widget_h, anchor)

    def set_zoom(
        self, zoom: float, widget_w: float, widget_h: float, anchor: tuple[float, float] | None = None
    ) -> None:
        ax, ay = anchor if anchor is not None else (widget_w / 2.0, widget_h / 2.0)
        ix, iy = self.widget_to_image(ax, ay, widget_w, widget_h)
        self.zoom = min(ZOOM_MAX, max(ZOOM_MIN, float(zoom)))
        self.fit = False
        nx, ny = self.image_to_widget(ix, iy, widget_w, widget_h)
        self.pan_x += ax - nx
        self.pan_y += ay - ny

    def actual_size(self) -> None:
        """1:1 - one image pixel per screen pixel, centred."""
        self.zoom, self.fit, self.pan_x, self.pan_y = 1.0, False, 0.0, 0.0

    def fit_to_window(self) -> None:
        self.fit, self.pan_x, self.pan_y = True, 0.0, 0.0

    def pan_by(self, dx: float, dy: float) -> None:
        self.pan_x += dx
        self.pan_y += dy

    # ----- orientation -----
    def rotate_cw(self) -> None:
        self.rotation = (self.rotation + 1) % 4

    def rotate_ccw(self) -> None:
        self.rotation = (self.rotation - 1) % 4

    def toggle_flip_h(self) -> None:
        self.flip_h = not self.flip_h

    def toggle_flip_v(self) -> None:
        self.flip_v = not self.flip_v

    def toggle_invert(self) -> None:
        self.invert = not self.invert

    def reset(self) -> None:
        """Back to how the image first appeared (header window, fitted, upright); position kept."""
        self.zoom, self.fit, self.pan_x, self.pan_y = 1.0, True, 0.0, 0.0
        self.rotation, self.flip_h, self.flip_v, self.invert, self.window = 0, False, False, False, None

    # ----- navigation -----
    def set_counts(self, slice_count: int, frame_count: int = 1) -> None:
        self.slice_count = max(1, int(slice_count))
        self.frame_count = max(1, int(frame_count))
        self.slice_index = min(max(0, self.slice_index), self.slice_count - 1)
        self.frame_index = min(max(0, self.frame_index), self.frame_count - 1)

    def position(self) -> tuple[int, int]:
        return self.slice_index, self.frame_index

    def step(self, delta: int, frames_of) -> tuple[int, int]:
        """Move `delta` images through the series: through the frames of a multi-frame instance first,
        then on to the next instance. `frames_of(slice_index)` gives an instance's frame count (it may load
        that instance). Stops at the ends; returns the new (slice, frame)."""
        s, f = self.slice_index, self.frame_index
        n_frames = self.frame_count
        for _ in range(abs(int(delta))):
            if delta > 0:
                if f + 1 < n_frames:
                    f += 1
                elif s + 1 < self.slice_count:
                    s, f = s + 1, 0
                    n_frames = max(1, int(frames_of(s)))
                else:
                    break
            else:
                if f > 0:
                    f -= 1
                elif s > 0:
                    s -= 1
                    n_frames = max(1, int(frames_of(s)))
                    f = n_frames - 1
                else:
                    break
        self.slice_index, self.frame_index, self.frame_count = s, f, n_frames
        return s, f

    def at_end(self) -> bool:
        return self.slice_index >= self.slice_count - 1 and self.frame_index >= self.frame_count - 1

    def zoom_percent(self, widget_w: float, widget_h: float) -> int:
        return round(self.effective_zoom(widget_w, widget_h) * 100)
