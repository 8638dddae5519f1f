"""A Grayscale Softcopy Presentation State as the viewer applies it, read from any vendor's GSPS.

A GSPS says how to show images it references: window (Softcopy VOI LUT), polarity (Presentation LUT Shape),
rotation/flip (Spatial Transformation), the visible area (Displayed Area Selection) and graphics/text on
graphic layers (PS3.3 C.10.4-C.10.6, C.11.6). Every item may be restricted to some images (and frames) by a
Referenced Image Sequence; without one it applies to every image the GSPS references.

Coordinates follow the viewer (x = column, y = row, PIXEL origin at the top-left corner of the first pixel,
as DICOM's PIXEL units). DISPLAY units stay fractions of the displayed area (0..1), painted on screen.
What the viewer cannot show (VOI LUT tables, compound graphics, shutters, overlays) is listed in `skipped`,
so the user is told rather than shown something half applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from viewer.imaging.window import WindowLevel

GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
PR_PREFIX = "1.2.840.10008.5.1.4.1.1.11."
GRAPHIC_TYPES = ("POINT", "POLYLINE", "INTERPOLATED", "CIRCLE", "ELLIPSE")
DEFAULT_COLOR = (255, 200, 0)  # layers without a recommended colour: amber, apart from our green measurements


class PresentationStateReadError(ValueError):
    """The file is not a presentation state the viewer can apply (the message names file and reason)."""


# (target SOP Instance UID, frame number 1-based or None = every frame)
ImageKey = tuple[str, int | None]


def _targets(item: Dataset) -> tuple[ImageKey, ...]:
    """The images an item is restricted to; () = every referenced image."""
    out: list[ImageKey] = []
    for ref in item.get("ReferencedImageSequence", []) or []:
        uid = str(ref.get("ReferencedSOPInstanceUID", ""))
        frames = ref.get("ReferencedFrameNumber")
        if frames is None or frames == "":
            out.append((uid, None))
        else:
            for f in (list(frames) if isinstance(frames, (MultiValue, list, tuple)) else [frames]):
                out.append((uid, int(f)))
    return tuple(out)


def _applies(targets: tuple[ImageKey, ...], sop_uid: str, frame: int) -> bool:
    """`frame` 0-based as the viewer counts."""
    if not targets:
        return True
    return any(uid == sop_uid and (f is None or f == frame + 1) for uid, f in targets)


@dataclass(frozen=True)
class Graphic:
    """One graphic object: points (N, 2) as (x, y) in `units` ("PIXEL" image, "DISPLAY" 0..1 of the area)."""

    kind: str
    points: tuple[tuple[float, float], ...]
    units: str = "PIXEL"
    filled: bool = False
    layer: str = ""


@dataclass(frozen=True)
class TextNote:
    """A text object, placed by its bounding box (when given) else at its anchor point."""

    text: str
    units: str = "PIXEL"
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 in box units
    box_units: str = "PIXEL"
    anchor: tuple[float, float] | None = None
    anchor_units: str = "PIXEL"
    anchor_visible: bool = False
    layer: str = ""


@dataclass(frozen=True)
class _Annotation:
    targets: tuple[ImageKey, ...]
    graphics: tuple[Graphic, ...]
    texts: tuple[TextNote, ...]


@dataclass(frozen=True)
class DisplayedArea:
    """The image region to show, in image pixel coordinates (x0, y0, x1, y1), and how to size it."""

    x0: float
    y0: float
    x1: float
    y1: float
    mode: str = "SCALE TO FIT"  # or TRUE SIZE / MAGNIFY
    magnification: float | None = None


@dataclass(frozen=True)
class ImagePresentation:
    """Everything one GSPS says about one image frame."""

    window: WindowLevel | None
    inverse: bool | None  # Presentation LUT Shape INVERSE (None: not stated)
    rotation: int  # quarter turns clockwise (Image Rotation / 90)
    flip_h: bool  # Image Horizontal Flip, applied after the rotation
    area: DisplayedArea | None
    graphics: tuple[Graphic, ...]
    texts: tuple[TextNote, ...]


@dataclass
class PresentationState:
    """One GSPS, ready to look up per image."""

    sop_instance_uid: str
    label: str = ""
    description: str = ""
    creator: str = ""
    date: str = ""
    source: str = ""  # the file it was read from, for messages
    referenced: set[str] = field(default_factory=set)  # SOP Instance UIDs it references
    layer_colors: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    _windows: list[tuple[tuple[ImageKey, ...], WindowLevel]] = field(default_factory=list)
    _areas: list[tuple[tuple[ImageKey, ...], DisplayedArea]] = field(default_factory=list)
    _annotations: list[_Annotation] = field(default_factory=list)
    inverse: bool | None = None
    rotation: int = 0
    flip_h: bool = False

    def applies_to(self, sop_uid: str) -> bool:
        return sop_uid in self.referenced

    def title(self) -> str:
        name = " ".join(part for part in self.creator.split("^") if part)  # DICOM PN: family^given
        who = f" by {name}" if name else ""
        when = f" {self.date[:4]}-{self.date[4:6]}-{self.date[6:8]}" if len(self.date) >= 8 else ""
        return f"{self.label or 'Presentation state'}{who}{when}"

    def for_image(self, sop_uid: str, frame: int = 0) -> ImagePresentation | None:
        """What applies to frame `frame` (0-based) of image `sop_uid`; None if the GSPS does not reference it."""
        if not self.applies_to(sop_uid):
            return None
        window = next((w for t, w in self._windows if _applies(t, sop_uid, frame)), None)
        area = next((a for t, a in self._areas if _applies(t, sop_uid, frame)), None)
        graphics: list[Graphic] = []
        texts: list[TextNote] = []
        for ann in self._annotations:
            if _applies(ann.targets or tuple((u, None) for u in self.referenced), sop_uid, frame):
                graphics.extend(ann.graphics)
                texts.extend(ann.texts)
        return ImagePresentation(window, self.inverse, self.rotation, self.flip_h, area, tuple(graphics),
                                 tuple(texts))

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_dataset(cls, ds: Dataset, source: str = "") -> PresentationState:
        name = source or str(ds.get("SOPInstanceUID", "presentation state"))
        uid = str(ds.get("SOPClassUID", ""))
        if uid != GSPS_CLASS:
            kind = "a colour/other presentation state" if uid.startswith(PR_PREFIX) else "not a presentation state"
            raise PresentationStateReadError(f"{name}: {kind} (SOP Class {uid or 'missing'}); "
                                             "only Grayscale Softcopy Presentation States are applied")
        try:
            return cls._read(ds, name)
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
            raise PresentationStateReadError(f"{name}: malformed presentation state ({exc})") from exc

    @classmethod
    def from_file(cls, path: str | Path) -> PresentationState:
        try:
            ds = pydicom.dcmread(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear message
            raise PresentationStateReadError(f"{path}: not a readable DICOM file ({exc})") from exc
        return cls.from_dataset(ds, str(path))

    @classmethod
    def _read(cls, ds: Dataset, name: str) -> PresentationState:
        ps = cls(sop_instance_uid=str(ds.SOPInstanceUID), label=str(ds.get("ContentLabel", "") or ""),
                 description=str(ds.get("ContentDescription", "") or ""),
                 creator=str(ds.get("ContentCreatorName", "") or ""),
                 date=str(ds.get("PresentationCreationDate", "") or ""), source=name)
        for series in ds.get("ReferencedSeriesSequence", []) or []:
            for ref in series.get("ReferencedImageSequence", []) or []:
                ps.referenced.add(str(ref.ReferencedSOPInstanceUID))
        if not ps.referenced:
            raise PresentationStateReadError(f"{name}: references no image")
        for layer in ds.get("GraphicLayerSequence", []) or []:
            ps.layer_colors[str(layer.GraphicLayer)] = _layer_color(layer)
        for item in ds.get("SoftcopyVOILUTSequence", []) or []:
            if "WindowCenter" in item and "WindowWidth" in item:
                center = _first_number(item.WindowCenter)
                width = max(1.0, _first_number(item.WindowWidth))
                function = str(item.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
                explanation = item.get("WindowCenterWidthExplanation", "") or ""
                ps._windows.append((_targets(item), WindowLevel(
                    center, width, str(_first_value(explanation))[:32] or "GSPS",
                    function if function in ("LINEAR", "LINEAR_EXACT", "SIGMOID") else "LINEAR")))
            elif "VOILUTSequence" in item:
                ps.skipped.append("VOI LUT table (window used instead)")
        shape = str(ds.get("PresentationLUTShape", "") or "").upper()
        ps.inverse = {"INVERSE": True, "IDENTITY": False}.get(shape)
        if "PresentationLUTSequence" in ds:
            ps.skipped.append("Presentation LUT table")
        ps.rotation = (int(ds.get("ImageRotation", 0) or 0) // 90) % 4
        ps.flip_h = str(ds.get("ImageHorizontalFlip", "N") or "N").upper() == "Y"
        for item in ds.get("DisplayedAreaSelectionSequence", []) or []:
            tl = [float(v) for v in item.DisplayedAreaTopLeftHandCorner]
            br = [float(v) for v in item.DisplayedAreaBottomRightHandCorner]
            # 1-based pixel indices of the corners as they appear on screen: back to an image-space box
            x0, x1 = min(tl[0], br[0]) - 1.0, max(tl[0], br[0])
            y0, y1 = min(tl[1], br[1]) - 1.0, max(tl[1], br[1])
            mode = str(item.get("PresentationSizeMode", "SCALE TO FIT") or "SCALE TO FIT").upper()
            mag = item.get("PresentationPixelMagnificationRatio")
            ps._areas.append((_targets(item), DisplayedArea(x0, y0, x1, y1, mode, float(mag) if mag else None)))
        for item in ds.get("GraphicAnnotationSequence", []) or []:
            ps._annotations.append(_annotation(item, ps.skipped))
        if "ShutterShape" in ds:
            ps.skipped.append("display shutter")
        if any(0x6000 <= (tag.group & 0xFF00) <= 0x60FF and tag.group % 2 == 0 for tag in ds.keys()):
            ps.skipped.append("overlay planes")
        for item in ds.get("GraphicAnnotationSequence", []) or []:
            if "CompoundGraphicSequence" in item:
                ps.skipped.append("compound graphics")
        ps.skipped = list(dict.fromkeys(ps.skipped))
        return ps


def _first_value(value):  # noqa: ANN001, ANN202 - DICOM multi-values: the first applies
    if isinstance(value, (MultiValue, list, tuple)):
        return value[0] if len(value) else ""
    return value


def _first_number(value) -> float:  # noqa: ANN001
    return float(_first_value(value))


def _layer_color(layer: Dataset) -> tuple[int, int, int]:
    lab = layer.get("GraphicLayerRecommendedDisplayCIELabValue")
    if lab:
        return _lab_to_rgb(*[int(v) for v in lab])
    grey = layer.get("GraphicLayerRecommendedDisplayGrayscaleValue")
    if grey is not None and grey != "":
        g = round(int(grey) * 255 / 0xFFFF)
        return g, g, g
    return DEFAULT_COLOR


def _lab_to_rgb(l16: int, a16: int, b16: int) -> tuple[int, int, int]:
    """DICOM's scaled CIELab (PS3.3 C.10.7.1.1: L 0..100, a/b -128..127 as 0..0xFFFF) to sRGB bytes (D50)."""
    lum, a, b = l16 * 100.0 / 0xFFFF, a16 * 255.0 / 0xFFFF - 128.0, b16 * 255.0 / 0xFFFF - 128.0
    fy = (lum + 16.0) / 116.0
    fx, fz = fy + a / 500.0, fy - b / 200.0

    def inv(t: float) -> float:
        return t ** 3 if t ** 3 > 0.008856 else (t - 16.0 / 116.0) / 7.787

    x, y, z = 0.9642 * inv(fx), 1.0 * inv(fy), 0.8249 * inv(fz)  # D50 white
    # Bradford-adapted D50 XYZ -> linear sRGB
    r = 3.1339 * x - 1.6169 * y - 0.4906 * z
    g = -0.9788 * x + 1.9161 * y + 0.0335 * z
    bl = 0.0719 * x - 0.2290 * y + 1.4052 * z

    def gamma(c: float) -> int:
        c = min(1.0, max(0.0, c))
        c = 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055
        return round(c * 255)

    return gamma(r), gamma(g), gamma(bl)


def _points(data) -> tuple[tuple[float, float], ...]:  # noqa: ANN001
    values = [float(v) for v in data]
    if len(values) % 2:
        raise ValueError("Graphic Data has an odd number of values")
    return tuple((values[i], values[i + 1]) for i in range(0, len(values), 2))


def _annotation(item: Dataset, skipped: list[str]) -> _Annotation:
    layer = str(item.get("GraphicLayer", "") or "")
    graphics: list[Graphic] = []
    for g in item.get("GraphicObjectSequence", []) or []:
        kind = str(g.get("GraphicType", "")).upper()
        if kind not in GRAPHIC_TYPES:
            skipped.append(f"graphic type {kind or '?'}")
            continue
        pts = _points(g.GraphicData)
        if not pts:
            continue
        graphics.append(Graphic(kind, pts, str(g.get("GraphicAnnotationUnits", "PIXEL")).upper(),
                                str(g.get("GraphicFilled", "N")).upper() == "Y", layer))
    texts: list[TextNote] = []
    for t in item.get("TextObjectSequence", []) or []:
        box = None
        if "BoundingBoxTopLeftHandCorner" in t and "BoundingBoxBottomRightHandCorner" in t:
            (x0, y0), (x1, y1) = ([float(v) for v in t.BoundingBoxTopLeftHandCorner],
                                  [float(v) for v in t.BoundingBoxBottomRightHandCorner])
            box = (x0, y0, x1, y1)
        anchor = tuple(float(v) for v in t.AnchorPoint) if "AnchorPoint" in t else None
        if box is None and anchor is None:
            skipped.append("text without position")
            continue
        texts.append(TextNote(str(t.get("UnformattedTextValue", "") or ""),
                              box=box, box_units=str(t.get("BoundingBoxAnnotationUnits", "PIXEL")).upper(),
                              anchor=anchor, anchor_units=str(t.get("AnchorPointAnnotationUnits", "PIXEL")).upper(),
                              anchor_visible=str(t.get("AnchorPointVisibility", "N")).upper() == "Y", layer=layer))
    return _Annotation(_targets(item), tuple(graphics), tuple(texts))
