"""Measurement geometry and statistics in physical and modality units (no Qt)."""

from viewer.measure.compute import MeasurementResult, measure
from viewer.measure.shapes import (
    Angle,
    Annotation,
    Arrow,
    Distance,
    EllipseROI,
    Measurement,
    Note,
    RectROI,
    Shape,
    is_annotation,
    measurement_from_dict,
)

__all__ = [
    "Angle",
    "Annotation",
    "Arrow",
    "Distance",
    "EllipseROI",
    "Measurement",
    "MeasurementResult",
    "Note",
    "RectROI",
    "Shape",
    "is_annotation",
    "measure",
    "measurement_from_dict",
]
