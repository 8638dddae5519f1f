"""Measurements and the display in use as a Grayscale Softcopy Presentation State (highdicom).

Any PACS viewer applies a GSPS on top of the untouched image: the shapes as graphics, each result as a text
object anchored at its shape, the window (Softcopy VOI LUT), inversion (Presentation LUT Shape), the
rotation/flip (Spatial Transformation) and the visible area (Displayed Area Selection). Colour images are
refused (a GSPS applies to greyscale images only).

Arrows go out as two POLYLINEs (shaft, and the head as barb-tip-barb) so every viewer draws an arrow, with
their label as a text object anchored at the tip (Anchor Point Visibility N: the shaft is the leader) whose
bounding box sits at the tail; a text note is a text object by its bounding box (PS3.3 C.10.5).
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from app.dicom_objects.annotations import AnnotatedImage
from app.dicom_objects.common import (
    DEVICE_SERIAL,
    MANUFACTURER,
    MODEL_NAME,
    copy_study_extras,
    person_name,
    software_version,
)
from viewer.measure import Measurement, MeasurementResult, Shape
from viewer.measure.shapes import Angle, Arrow, Distance, EllipseROI, Note, RectROI, arrow_head

LAYER = "MEASUREMENTS"
SERIES_NUMBER = 920
CONTENT_LABEL = "MEASUREMENTS"


class PresentationStateError(ValueError):
    """The images cannot carry a GSPS (colour, different studies, nothing drawn)."""


def graphic_of(m: Measurement) -> tuple[str, np.ndarray]:
    """(Graphic Type, (N, 2) points in PIXEL units) for one shape."""
    if isinstance(m, Distance):
        return "POLYLINE", np.array([m.p0, m.p1])
    if isinstance(m, Angle):
        return "POLYLINE", np.array([m.p0, m.vertex, m.p1])
    x0, x1 = sorted((m.p0[0], m.p1[0]))
    y0, y1 = sorted((m.p0[1], m.p1[1]))
    if isinstance(m, RectROI):
        return "POLYLINE", np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)])
    if isinstance(m, EllipseROI):
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        horizontal = [(x0, cy), (x1, cy)]
        vertical = [(cx, y0), (cx, y1)]
        major, minor = (horizontal, vertical) if x1 - x0 >= y1 - y0 else (vertical, horizontal)
        return "ELLIPSE", np.array(major + minor)
    raise PresentationStateError(f"cannot draw a {type(m).__name__} in a presentation state")


def label_text(m: Shape, result: MeasurementResult) -> str:
    lines = list(result.lines) if result.lines else [result.text]
    return "\n".join(([m.label] if m.label else []) + lines)


def _anchor(points: np.ndarray, columns: int, rows: int) -> tuple[float, float]:
    """Where the text goes: the shape's right-most point, kept inside the image."""
    x, y = points[int(np.argmax(points[:, 0]))]
    return float(min(max(x, 0.0), columns)), float(min(max(y, 0.0), rows))


def text_box(at: tuple[float, float], text: str, columns: int, rows: int, side: str = "top-left",
             ) -> tuple[float, float, float, float]:
    """A bounding box (x0, y0, x1, y1, PIXEL) for `text` with its top-left corner at `at` (side "top-left"), or
    vertically centred on `at` and starting ("left") or ending ("right") there: a character is 1/40 of the
    image's longer side, as viewers scale the text into the box; kept inside the image (DICOM requires it)."""
    lines = text.splitlines() or [""]
    h = max(rows, columns) / 40.0
    width = min(columns - 1.0, max(h, 0.6 * h * max(len(line) for line in lines)))
    height = min(rows - 1.0, h * len(lines))
    x0 = at[0] - width if side == "right" else at[0]
    y0 = at[1] if side == "top-left" else at[1] - height / 2
    x0 = min(max(x0, 0.0), columns - width)
    y0 = min(max(y0, 0.0), rows - height)
    return x0, y0, x0 + width, y0 + height


def _inside(p: tuple[float, float], columns: int, rows: int) -> tuple[float, float]:
    return min(max(p[0], 0.0), float(columns)), min(max(p[1], 0.0), float(rows))


def _arrow(m: Arrow, columns: int, rows: int) -> tuple[list[np.ndarray], hd.pr.TextObject | None]:
    """The shaft and head polylines, and the label anchored at the tip with its box at the tail."""
    tip, tail = _inside(m.tip, columns, rows), _inside(m.tail, columns, rows)
    length = float(np.hypot(tail[0] - tip[0], tail[1] - tip[1]))
    head = min(0.3 * length, max(rows, columns) / 30.0)
    b1, b2 = (_inside(b, columns, rows) for b in arrow_head(tip, tail, head))
    lines = [np.array([tail, tip]), np.array([b1, tip, b2])]
    if not m.label:
        return lines, None
    box = text_box(tail, m.label, columns, rows, side="right" if tail[0] < tip[0] else "left")
    return lines, hd.pr.TextObject(text_value=m.label[:1024], units="PIXEL", bounding_box=box, anchor_point=tip,
                                   anchor_point_visible=False, text_justification="LEFT")


def _annotation(item: AnnotatedImage, layer: hd.pr.GraphicLayer, frame: int) -> hd.pr.GraphicAnnotation | None:
    ds = item.dataset
    columns, rows = int(ds.Columns), int(ds.Rows)
    graphics, texts = [], []

    def add_graphic(gtype: str, pts: np.ndarray) -> None:
        graphics.append(hd.pr.GraphicObject(graphic_type=gtype, graphic_data=pts.astype(float), units="PIXEL",
                                            tracking_id=f"{item.sop_instance_uid}-{len(graphics) + 1}"[:64],
                                            tracking_uid=hd.UID()))

    for m, result in zip(item.measurements, item.results(), strict=True):
        if m.frame != frame:
            continue
        if isinstance(m, Arrow):
            lines, text = _arrow(m, columns, rows)
            for pts in lines:
                add_graphic("POLYLINE", pts)
            if text is not None:
                texts.append(text)
            continue
        if isinstance(m, Note):
            if m.label.strip():
                texts.append(hd.pr.TextObject(
                    text_value=m.label[:1024], units="PIXEL", text_justification="LEFT",
                    bounding_box=text_box(_inside(m.anchor, columns, rows), m.label, columns, rows)))
            continue
        gtype, pts = graphic_of(m)
        add_graphic(gtype, pts)
        ax, ay = _anchor(pts, columns, rows)
        texts.append(hd.pr.TextObject(text_value=label_text(m, result)[:1024], units="PIXEL",
                                      anchor_point=(ax, ay), anchor_point_visible=False))
    if not graphics and not texts:
        return None
    multi = item.n_frames > 1
    return hd.pr.GraphicAnnotation(referenced_images=[ds], graphic_layer=layer,
                                   referenced_frame_number=frame + 1 if multi else None,
                                   graphic_objects=graphics or None, text_objects=texts or None)


def _voi(items: Sequence[AnnotatedImage]) -> list[hd.pr.SoftcopyVOILUTTransformation] | None:
    out = []
    for item in items:
        w = item.display.window
        if w is None:
            continue
        out.append(hd.pr.SoftcopyVOILUTTransformation(
            window_center=float(w.center), window_width=max(1.0, float(w.width)),
            window_explanation=(w.name or "RadStation")[:64], voi_lut_function=w.function,
            referenced_images=hd.ReferencedImageSequence(referenced_images=[item.dataset])))
    if len(out) == len(items) == 1:  # one image: the window applies to it without a reference list
        del out[0].ReferencedImageSequence
    return out or None


def _presentation_lut(items: Sequence[AnnotatedImage]) -> hd.PresentationLUTTransformation:
    """INVERSE when the shown polarity is 'white = low values' (MONOCHROME1 not inverted, or inverted 2)."""
    shapes = set()
    for item in items:
        mono1 = str(item.dataset.get("PhotometricInterpretation", "")) == "MONOCHROME1"
        shapes.add("INVERSE" if mono1 != item.display.invert else "IDENTITY")
    if len(shapes) > 1:
        raise PresentationStateError("images shown with different polarity need separate presentation states")
    return hd.PresentationLUTTransformation(presentation_lut_shape=shapes.pop())


def _screen_corners(lo: tuple[int, int], hi: tuple[int, int], degrees: int, flip: bool,
                    ) -> tuple[list[int], list[int]]:
    """The image-space corners of [lo, hi] that end up top-left and bottom-right on screen after the
    Spatial Transformation (rotate, then flip): DICOM names the displayed area by those two."""
    rot = {0: (1, 0, 0, 1), 90: (0, -1, 1, 0), 180: (-1, 0, 0, -1), 270: (0, 1, -1, 0)}[degrees]
    corners = [(x, y) for x in (lo[0], hi[0]) for y in (lo[1], hi[1])]

    def screen(p: tuple[int, int]) -> tuple[int, int]:
        x, y = rot[0] * p[0] + rot[1] * p[1], rot[2] * p[0] + rot[3] * p[1]
        return (-x if flip else x), y

    tl = min(corners, key=lambda p: screen(p))
    br = max(corners, key=lambda p: screen(p))
    return list(tl), list(br)


def _spatial_and_area(gsps: Dataset, items: Sequence[AnnotatedImage]) -> None:
    rotations = {item.display.dicom_rotation for item in items}
    if len(rotations) > 1:
        raise PresentationStateError("images shown rotated/flipped differently need separate presentation states")
    degrees, flip = rotations.pop()
    if degrees or flip:
        gsps.ImageRotation = degrees
        gsps.ImageHorizontalFlip = "Y" if flip else "N"
    areas = []
    for item in items:
        ds = item.dataset
        area_item = Dataset()
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        area_item.ReferencedImageSequence = [ref]
        if item.display.area is None:
            tl, br = [1, 1], [int(ds.Columns), int(ds.Rows)]
        else:
            x0, y0, x1, y1 = item.display.area
            tl, br = _screen_corners((int(np.floor(x0)) + 1, int(np.floor(y0)) + 1),
                                     (max(int(np.floor(x0)) + 1, int(np.ceil(x1))),
                                      max(int(np.floor(y0)) + 1, int(np.ceil(y1)))), degrees, flip)
        area_item.DisplayedAreaTopLeftHandCorner = tl
        area_item.DisplayedAreaBottomRightHandCorner = br
        area_item.PresentationSizeMode = "SCALE TO FIT"
        spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
        if spacing:
            area_item.PresentationPixelSpacing = [float(v) for v in spacing]
        else:
            area_item.PresentationPixelAspectRatio = [1, 1]
        areas.append(area_item)
    if len(areas) == 1:
        del areas[0].ReferencedImageSequence
    gsps.DisplayedAreaSelectionSequence = areas


def build_gsps(items: Sequence[AnnotatedImage], *, series_uid: str, sop_uid: str, creator: str = "",
               institution: str = "", instance_number: int = 1, label: str = CONTENT_LABEL,
               description: str = "Measurements and display (RadStation)") -> hd.pr.GrayscaleSoftcopyPresentationState:
    """One GSPS over `items` (same study); every measurement drawn and labelled with its result."""
    items = list(items)
    if not items:
        raise PresentationStateError("no image to make a presentation state for")
    studies = {str(i.dataset.StudyInstanceUID) for i in items}
    if len(studies) > 1:
        raise PresentationStateError("a presentation state covers images of one study only")
    for item in items:
        if int(item.dataset.get("SamplesPerPixel", 1)) != 1:
            raise PresentationStateError(f"image {item.sop_instance_uid} is colour; a GSPS applies to greyscale only")
    layer = hd.pr.GraphicLayer(layer_name=LAYER, order=1, description="RadStation measurements",
                               display_color=hd.color.CIELabColor(100.0, -60.0, 60.0))
    annotations = []
    for item in items:
        for frame in sorted({m.frame for m in item.measurements}):
            ann = _annotation(item, layer, frame)
            if ann is not None:
                annotations.append(ann)
    gsps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[i.dataset for i in items],
        series_instance_uid=series_uid,
        series_number=SERIES_NUMBER,
        sop_instance_uid=sop_uid,
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=software_version(),
        device_serial_number=DEVICE_SERIAL,
        content_label=label,
        content_description=description[:64],
        graphic_annotations=annotations or None,
        graphic_layers=[layer] if annotations else None,
        institution_name=institution or None,
        content_creator_name=person_name(creator) if creator else None,
        voi_lut_transformations=_voi(items),
        presentation_lut_transformation=_presentation_lut(items),
    )
    _spatial_and_area(gsps, items)
    gsps.SeriesDescription = "Measurements (presentation state)"
    if "Laterality" not in gsps:  # General Series type 2C: empty = not a paired structure / unknown
        gsps.Laterality = items[0].dataset.get("Laterality", None)
    copy_study_extras(gsps, items[0].dataset)
    return gsps
