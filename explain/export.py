"""A map as a DICOM object a PACS viewer can show, linked to the image it explains.

- Source with a Frame of Reference and plane geometry (CT/MR slices): a highdicom Parametric Map
  (float values 0..1, same Frame of Reference and plane position, source image referenced).
- Projection radiographs (DX/CR/SC, no Frame of Reference): a Secondary Capture of the image with the
  map painted in colour, marked DERIVED\\SECONDARY with burned-in annotation, same study, the source
  referenced in Source Image Sequence (and Referenced Image Sequence), same size and pixel spacing.
In both the series description says it is an AI explanation map, never the original image.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from explain.colormap import colorize

KINDS = ("auto", "parametric-map", "secondary-capture")
MANUFACTURER = "RadStation"
_UNITLESS = Code("1", "UCUM", "no units")


def _check(source: Dataset, values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float32)
    if "Rows" not in source or "Columns" not in source or "SOPInstanceUID" not in source:
        raise ValueError("source dataset is not an image (no Rows/Columns/SOPInstanceUID)")
    if int(getattr(source, "NumberOfFrames", 1) or 1) > 1:
        raise ValueError("multi-frame sources are not supported; export per frame from single-frame images")
    if arr.shape != (int(source.Rows), int(source.Columns)):
        raise ValueError(f"map shape {arr.shape} does not match the source image "
                         f"({int(source.Rows)}, {int(source.Columns)})")
    if not np.isfinite(arr).all():
        raise ValueError("map has non-finite values")
    if arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError("map values must lie in [0, 1] (normalise it first)")
    return arr


def _display_pixels(source: Dataset) -> np.ndarray:
    """The source as 8-bit grey the way a viewer shows it by default (modality + VOI LUT)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    px = source.pixel_array.astype(np.float64)
    if px.ndim == 3:  # colour source: luminance
        px = px[..., :3].mean(-1)
    else:
        px = apply_modality_lut(px, source)
        if "WindowCenter" in source or "VOILUTSequence" in source:
            px = apply_voi_lut(px, source).astype(np.float64)
    lo, hi = np.percentile(px, [0.5, 99.5])
    out = np.clip((px - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(px)
    if getattr(source, "PhotometricInterpretation", "") == "MONOCHROME1":
        out = 1.0 - out
    return (out * 255).round().astype(np.uint8)


def _has_geometry(source: Dataset) -> bool:
    return all(k in source for k in ("FrameOfReferenceUID", "ImagePositionPatient", "ImageOrientationPatient",
                                     "PixelSpacing"))


def _secondary_capture(source: Dataset, arr: np.ndarray, label: str, colormap: str, opacity: float,
                       threshold: float | None, series_number: int) -> Dataset:
    grey = _display_pixels(source).astype(np.float32)
    rgba = colorize(arr, colormap, opacity, threshold).astype(np.float32)
    alpha = rgba[..., 3:4] / 255.0
    rgb = (grey[..., None] * (1 - alpha) + rgba[..., :3] * alpha).round().clip(0, 255).astype(np.uint8)
    spacing = source.get("PixelSpacing") or source.get("ImagerPixelSpacing")
    orient = source.get("PatientOrientation")
    sc = hd.sc.SCImage.from_ref_dataset(
        source, rgb, "RGB", 8, "PATIENT", hd.UID(), series_number, hd.UID(), 1, MANUFACTURER,
        pixel_spacing=tuple(float(v) for v in spacing) if spacing else None,
        patient_orientation=tuple(orient) if orient and len(orient) == 2 else ("L", "F"),
    )
    sc.ImageType = ["DERIVED", "SECONDARY", "AI_EXPLANATION"]
    sc.BurnedInAnnotation = "YES"
    sc.SeriesDescription = f"AI explanation map (derived): {label}"[:64]
    sc.DerivationDescription = (f"RadStation explanation map '{label}' painted over the source image "
                                f"({colormap}, opacity {opacity:.2f}); not for primary diagnosis")[:1024]
    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    sc.SourceImageSequence = [ref]
    sc.ReferencedImageSequence = [ref]
    if "FrameOfReferenceUID" in source:
        sc.FrameOfReferenceUID = source.FrameOfReferenceUID
    return sc


def _parametric_map(source: Dataset, arr: np.ndarray, label: str, series_number: int) -> Dataset:
    mapping = hd.pm.RealWorldValueMapping(lut_label="EXPLAIN", lut_explanation=label[:64], unit=_UNITLESS,
                                          value_range=(0.0, 1.0), slope=1.0, intercept=0.0)
    pm = hd.pm.ParametricMap(
        source_images=[source], pixel_array=arr, series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name="RadStation explain", software_versions="1", device_serial_number="0",
        contains_recognizable_visual_features=False, real_world_value_mappings=[mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.5, window_width=1.0)],
        content_label="AIEXPLAIN", content_description=label[:64],
    )
    pm.SeriesDescription = f"AI explanation map (derived): {label}"[:64]
    return pm


def export_map(source: Dataset | str | Path, values: np.ndarray, path: str | Path | None = None, *,
               label: str = "explanation", kind: str = "auto", colormap: str = "jet", opacity: float = 0.5,
               threshold: float | None = None, series_number: int = 9001) -> Dataset:
    """Build (and with `path`, write) the DICOM object for `values` (H, W in [0, 1], the source's pixel
    grid - the maps of explain.report already are). `kind`: see KINDS; auto picks a Parametric Map when
    the source has a Frame of Reference and plane geometry, else a derived Secondary Capture."""
    if kind not in KINDS:
        raise ValueError(f"unknown export kind {kind!r}; use one of {KINDS}")
    if not isinstance(source, Dataset):
        source = pydicom.dcmread(source)
    arr = _check(source, values)
    label = label.strip() or "explanation"
    use_pm = kind == "parametric-map" or (kind == "auto" and _has_geometry(source))
    if use_pm and not _has_geometry(source):
        raise ValueError("a Parametric Map needs a source with Frame of Reference and plane geometry; "
                         "use kind='secondary-capture' for projection radiographs")
    ds = _parametric_map(source, arr, label, series_number) if use_pm else _secondary_capture(
        source, arr, label, colormap, opacity, threshold, series_number)
    if "Laterality" not in ds:
        ds.Laterality = source.get("Laterality", None)  # General Series Type 2C: empty = unknown
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(str(path), enforce_file_format=True)
    return ds
