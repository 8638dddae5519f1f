"""Measurement geometry and statistics in physical and modality units (no Qt)."""

from viewer.measure.compute import MeasurementResult, measure
from viewer.measure.shapes import Angle, Distance, EllipseROI, Measurement, RectROI, measurement_from_dict

__all__ = [
    "Angle",
    "Distance",
    "EllipseROI",
    "Measurement",
    "MeasurementResult",
    "RectROI",
    "measure",
    "measurement_from_dict",
]
