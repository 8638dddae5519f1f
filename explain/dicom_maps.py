"""An explanation map as the two standard objects PACS viewers overlay on the source image (highdicom):

- DICOM Segmentation (binary): the map thresholded, one segment labelled with what it explains, property
  type Saliency (DCM 130404), algorithm identified (AI family, engine name and weights hash as version);
- Parametric Map: the map's values 0..1 (unitless, real world value mapping) on the source's pixel grid.

Both reference the source image and share its study. The SEG works for projection radiographs (no Frame
of Reference: one frame aligned pixel for pixel) and CT/MR slices (same plane position). The Parametric
Map IOD requires a Frame of Reference and plane position/orientation; a radiograph has none, so its map
gets a Frame of Reference of its own (a new UID shared with nothing, Position Reference Indicator empty), a
nominal plane at the origin oriented as the source's Patient Orientation says, and the source's (imager)
pixel spacing. Those say nothing about the patient: what places the map is the Derivation Image reference
to the source with Spatial Locations Preserved YES, one map pixel per source pixel (`projection_grid`).
Their series descriptions say they are derived AI objects; RadStation never counts them as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

MANUFACTURER = "RadStation"
SEG_SERIES_NUMBER = 9101
PMAP_SERIES_NUMBER = 9102


@dataclass(frozen=True)
class MapSource:
    """What made the map: shown in the objects so a reader can trace it."""

    label: str  # e.g. "attention: Small right pleural effusion."
    engine: str = "RadStation explain"
    weights: str = ""  # weights hash or name


def _check(source: Dataset, values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float32)
    if "Rows" not in source or "SOPInstanceUID" not in source:
        raise ValueError("the source is not an image (no Rows/SOPInstanceUID)")
    if int(source.get("NumberOfFrames") or 1) > 1:
        raise ValueError("multi-frame sources are not supported; export per single-frame image")
    if arr.shape != (int(source.Rows), int(source.Columns)):
        raise ValueError(f"map shape {arr.shape} does not match the source image "
                         f"({int(source.Rows)}, {int(source.Columns)})")
    if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError("map values must be finite and lie in [0, 1] (normalise it first)")
    return arr


def _common(source: Dataset, made_by: MapSource) -> dict:
    return dict(manufacturer=MANUFACTURER, manufacturer_model_name=made_by.engine[:64],
                software_versions=(made_by.weights or "unknown")[:64], device_serial_number="0")


def build_segmentation(source: Dataset, values: np.ndarray, made_by: MapSource, threshold: float = 0.5, *,
                       series_uid: str | None = None, sop_uid: str | None = None) -> hd.seg.Segmentation:
    """The map above `threshold` as a one-segment binary SEG over `source`."""
    arr = _check(source, values)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    mask = arr >= threshold
    algorithm = hd.AlgorithmIdentificationSequence(name=made_by.engine[:64], family=codes.cid7162.ArtificialIntelligence,
                                                   version=(made_by.weights or "unknown")[:64])
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label=made_by.label[:64] or "explanation",
        segmented_property_category=codes.SCT.SpatialAndRelationalConcept,
        segmented_property_type=codes.DCM.Saliency,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm)
    seg = hd.seg.Segmentation(
        source_images=[source], pixel_array=mask.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[segment],
        series_instance_uid=series_uid or hd.UID(), series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=sop_uid or hd.UID(), instance_number=1, omit_empty_frames=False,
        series_description=f"AI EXPLANATION map >= {threshold:g} (derived)"[:64], **_common(source, made_by))
    seg.ContentDescription = made_by.label[:64] or None
    if "FrameOfReferenceUID" not in source and "PatientOrientation" not in seg:
        # General Image type 2C without a Frame of Reference: the source's, as the pixels are aligned
        seg.PatientOrientation = source.get("PatientOrientation", None)
    return seg


# Patient Orientation letters (PS3.3 C.7.6.1.1.1) as patient-coordinate unit vectors (LPS)
_DIRECTIONS = {"L": (1.0, 0.0, 0.0), "R": (-1.0, 0.0, 0.0), "P": (0.0, 1.0, 0.0), "A": (0.0, -1.0, 0.0),
               "H": (0.0, 0.0, 1.0), "F": (0.0, 0.0, -1.0)}


def projection_grid(source: Dataset) -> Dataset:
    """A copy of a projection image's header with the nominal Frame of Reference and plane a Parametric Map
    needs (see the module docstring); the source's UIDs are kept, so the map references the real image."""
    grid = Dataset()
    for el in source:
        if el.keyword != "PixelData":
            grid.add(el)
    orientation = [str(v).upper() for v in (source.get("PatientOrientation") or [])]
    rows_dir = _DIRECTIONS.get(orientation[0][:1]) if len(orientation) == 2 else None
    cols_dir = _DIRECTIONS.get(orientation[1][:1]) if len(orientation) == 2 else None
    if rows_dir is None or cols_dir is None or abs(sum(a * b for a, b in zip(rows_dir, cols_dir, strict=True))) > 0:
        rows_dir, cols_dir = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)
    spacing = source.get("PixelSpacing") or source.get("ImagerPixelSpacing") or [1.0, 1.0]
    grid.FrameOfReferenceUID = hd.UID()
    grid.PositionReferenceIndicator = None
    grid.ImagePositionPatient = [0.0, 0.0, 0.0]
    grid.ImageOrientationPatient = [*rows_dir, *cols_dir]
    grid.PixelSpacing = [float(v) for v in spacing]
    grid.SliceThickness = 1.0  # nominal: a projection has no slab
    return grid


def build_parametric_map(source: Dataset, values: np.ndarray, made_by: MapSource, *,
                         series_uid: str | None = None, sop_uid: str | None = None) -> hd.pm.ParametricMap:
    """The map's values (0..1, unitless) as a Parametric Map over `source`."""
    arr = _check(source, values)
    grid = source if "FrameOfReferenceUID" in source else projection_grid(source)
    mapping = hd.pm.RealWorldValueMapping(lut_label="EXPLAIN", lut_explanation=made_by.label[:64] or "explanation",
                                          unit=codes.UCUM.NoUnits, value_range=(0.0, 1.0), slope=1.0, intercept=0.0)
    pm = hd.pm.ParametricMap(
        source_images=[grid], pixel_array=arr, series_instance_uid=series_uid or hd.UID(),
        series_number=PMAP_SERIES_NUMBER, sop_instance_uid=sop_uid or hd.UID(), instance_number=1,
        contains_recognizable_visual_features=False, real_world_value_mappings=[mapping],
        # LINEAR_EXACT: 0..1 spans the grey scale (LINEAR with width 1 is a threshold at 0, PS3.3 C.11.2.1.2)
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.5, window_width=1.0,
                                                         voi_lut_function="LINEAR_EXACT")],
        content_label="AIEXPLAIN", content_description=made_by.label[:64] or None, **_common(source, made_by))
    pm.SeriesDescription = "AI EXPLANATION values (derived)"
    if "Laterality" not in pm:  # General Series type 2C: as the source has it, empty when unknown
        pm.Laterality = source.get("Laterality", None)
    return pm
