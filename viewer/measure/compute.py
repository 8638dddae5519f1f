"""Turn a measurement shape into numbers a radiologist can trust: mm when the header says how big a
pixel is (and which header said so), pixels with an explicit warning when it does not, ROI statistics
in modality units (HU on CT)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from viewer.io.image import DicomImage
from viewer.measure.shapes import Angle, Distance, EllipseROI, RectROI, Shape, is_annotation

__all__ = ["MeasurementResult", "measure"]


@dataclass(frozen=True)
class MeasurementResult:
    """Numbers and display text for one measurement on one frame."""

    kind: str
    text: str
    calibrated: bool
    spacing_source: str
    note: str = ""
    length: float | None = None
    length_unit: str = ""
    angle_deg: float | None = None
    area: float | None = None
    area_unit: str = ""
    mean: float | None = None
    sd: float | None = None
    min: float | None = None
    max: float | None = None
    n_pixels: int = 0
    value_unit: str = ""
    lines: tuple[str, ...] = field(default=())


def _scale(image: DicomImage) -> tuple[float, float, bool]:
    """(mm per column step, mm per row step, calibrated); 1 px each when spacing is unknown."""
    spacing = image.pixel_spacing
    if spacing is None:
        return 1.0, 1.0, False
    row_mm, col_mm = spacing
    return col_mm, row_mm, True


def _suffix(image: DicomImage, calibrated: bool) -> str:
    if not calibrated:
        return " (spacing unknown)"
    if image.spacing_source == "ImagerPixelSpacing" and image.modality in ("CR", "DX", "DR", "MG", "RF", "XA", "PX", "IO"):
        return " (at detector)"
    return ""


def _fmt(value: float) -> str:
    return f"{value:.1f}" if abs(value) < 1e5 else f"{value:.4g}"


def _distance(m: Distance, image: DicomImage) -> MeasurementResult:
    sx, sy, calibrated = _scale(image)
    dx = (m.p1[0] - m.p0[0]) * sx
    dy = (m.p1[1] - m.p0[1]) * sy
    length = math.hypot(dx, dy)
    unit = "mm" if calibrated else "px"
    text = f"{_fmt(length)} {unit}{_suffix(image, calibrated)}"
    return MeasurementResult(
        kind=m.kind,
        text=text,
        calibrated=calibrated,
        spacing_source=image.spacing_source,
        note=image.spacing_note,
        length=length,
        length_unit=unit,
        lines=(text,),
    )


def _angle(m: Angle, image: DicomImage) -> MeasurementResult:
    # measured in physical space: on anisotropic pixels the on-screen angle in pixels would be wrong
    sx, sy, calibrated = _scale(image)
    ax, ay = (m.p0[0] - m.vertex[0]) * sx, (m.p0[1] - m.vertex[1]) * sy
    bx, by = (m.p1[0] - m.vertex[0]) * sx, (m.p1[1] - m.vertex[1]) * sy
    na, nb = math.hypot(ax, ay), math.hypot(bx, by)
    if na == 0 or nb == 0:
        text = "angle undefined (zero-length arm)"
        return MeasurementResult(m.kind, text, calibrated, image.spacing_source, image.spacing_note, lines=(text,))
    cos = max(-1.0, min(1.0, (ax * bx + ay * by) / (na * nb)))
    deg = math.degrees(math.acos(cos))
    text = f"{deg:.1f}°"
    return MeasurementResult(
        kind=m.kind,
        text=text,
        calibrated=calibrated,
        spacing_source=image.spacing_source,
        note=image.spacing_note,
        angle_deg=deg,
        lines=(text,),
    )


def _roi(m: RectROI | EllipseROI, image: DicomImage, frame: int) -> MeasurementResult:
    sx, sy, calibrated = _scale(image)
    x0, x1 = sorted((m.p0[0], m.p1[0]))
    y0, y1 = sorted((m.p0[1], m.p1[1]))
    w, h = x1 - x0, y1 - y0
    ellipse = isinstance(m, EllipseROI)
    geometric_area = (math.pi * w * h / 4.0 if ellipse else w * h) * sx * sy
    area_unit = "mm²" if calibrated else "px²"

    # pixels whose centers lie inside the shape; computed on the bounding box only (cheap on 3000x3000)
    c_lo = max(0, math.ceil(x0 - 0.5))
    c_hi = min(image.columns - 1, math.floor(x1 - 0.5))
    r_lo = max(0, math.ceil(y0 - 0.5))
    r_hi = min(image.rows - 1, math.floor(y1 - 0.5))
    values = np.empty(0, dtype=np.float32)
    if c_hi >= c_lo and r_hi >= r_lo:
        raw = image.frame(frame)[r_lo : r_hi + 1, c_lo : c_hi + 1]
        if image.is_color:
            block = raw.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        else:
            block = image.modality_values(raw, frame)
        if ellipse and w > 0 and h > 0:
            cy = (np.arange(r_lo, r_hi + 1) + 0.5 - (y0 + y1) / 2.0) / (h / 2.0)
            cx = (np.arange(c_lo, c_hi + 1) + 0.5 - (x0 + x1) / 2.0) / (w / 2.0)
            inside = cy[:, None] ** 2 + cx[None, :] ** 2 <= 1.0
            values = block[inside]
        elif not ellipse:
            values = block.ravel()
    unit = "luminance" if image.is_color else image.units
    area_text = f"area {_fmt(geometric_area)} {area_unit}{_suffix(image, calibrated)}"
    if values.size == 0:
        text = "ROI contains no pixel centers"
        return MeasurementResult(
            m.kind, text, calibrated, image.spacing_source, image.spacing_note,
            area=geometric_area, area_unit=area_unit, value_unit=unit, lines=(text, area_text),
        )
    values64 = values.astype(np.float64)
    mean = float(values64.mean())
    sd = float(values64.std(ddof=1)) if values.size > 1 else 0.0
    vmin, vmax = float(values64.min()), float(values64.max())
    u = f" {unit}" if unit else ""
    stats = f"mean {_fmt(mean)}{u}, SD {_fmt(sd)}"
    rng = f"min {_fmt(vmin)}, max {_fmt(vmax)}{u}"
    return MeasurementResult(
        kind=m.kind,
        text=f"{stats}; {rng}; {area_text}",
        calibrated=calibrated,
        spacing_source=image.spacing_source,
        note=image.spacing_note,
        area=geometric_area,
        area_unit=area_unit,
        mean=mean,
        sd=sd,
        min=vmin,
        max=vmax,
        n_pixels=int(values.size),
        value_unit=unit,
        lines=(stats, rng, area_text),
    )


def measure(m: Shape, image: DicomImage, frame: int = 0) -> MeasurementResult:
    """Compute `m` on `image` (frame `frame`). ROI SD is the sample SD (n-1), as most PACS report.
    An arrow or text note measures nothing: its result has no value and no lines (its label is its text)."""
    if is_annotation(m):
        return MeasurementResult(kind=m.kind, text="", calibrated=image.pixel_spacing is not None,
                                 spacing_source=image.spacing_source, note=image.spacing_note)
    if isinstance(m, Distance):
        return _distance(m, image)
    if isinstance(m, Angle):
        return _angle(m, image)
    if isinstance(m, RectROI | EllipseROI):
        if not 0 <= frame < image.n_frames:
            raise IndexError(f"frame {frame} out of range (0..{image.n_frames - 1})")
        return _roi(m, image, frame)
    raise TypeError(f"not a measurement: {type(m).__name__}")
