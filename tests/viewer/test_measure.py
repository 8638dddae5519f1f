"""Measurements against hand-computed values, with and without pixel spacing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from viewer.io.image import DicomImage
from viewer.measure import Angle, Distance, EllipseROI, RectROI, measure, measurement_from_dict


def _ct(gray_dataset, pixels=None, **attrs) -> DicomImage:
    if pixels is None:
        pixels = np.arange(100, dtype=np.int16).reshape(10, 10)
    return DicomImage.from_dataset(gray_dataset(pixels, RescaleSlope=1, RescaleIntercept=-1000, **attrs))


def test_distance_with_pixel_spacing(gray_dataset) -> None:
    image = _ct(gray_dataset, PixelSpacing=[0.5, 2.0])  # row 0.5 mm, column 2 mm
    r = measure(Distance((0, 0), (3, 4)), image, 0)
    assert r.calibrated and r.length_unit == "mm" and r.spacing_source == "PixelSpacing"
    assert r.length == pytest.approx(math.hypot(3 * 2.0, 4 * 0.5))
    assert r.text == "6.3 mm"


def test_distance_without_spacing_says_so(gray_dataset) -> None:
    r = measure(Distance((0, 0), (30, 40)), _ct(gray_dataset), 0)
    assert not r.calibrated and r.length == pytest.approx(50.0)
    assert r.text == "50.0 px (spacing unknown)"


def test_imager_pixel_spacing_on_projection_radiograph(gray_dataset) -> None:
    pixels = np.zeros((10, 10), np.uint16)
    image = DicomImage.from_dataset(gray_dataset(pixels, modality="DX", ImagerPixelSpacing=[0.2, 0.2]))
    r = measure(Distance((0, 0), (100, 0)), image, 0)
    assert r.spacing_source == "ImagerPixelSpacing" and r.length == pytest.approx(20.0)
    assert r.text == "20.0 mm (at detector)" and "detector" in r.note


def test_pixel_spacing_preferred_over_imager(gray_dataset) -> None:
    image = DicomImage.from_dataset(
        gray_dataset(np.zeros((4, 4), np.uint16), modality="CR", PixelSpacing=[0.1, 0.1], ImagerPixelSpacing=[0.2, 0.2])
    )
    assert image.pixel_spacing == (0.1, 0.1) and image.spacing_source == "PixelSpacing"
    image.dataset.PixelSpacingCalibrationType = "GEOMETRY"
    assert image.spacing_source == "calibrated"


def test_angle_degrees(gray_dataset) -> None:
    image = _ct(gray_dataset)
    assert measure(Angle((10, 0), (0, 0), (0, 10)), image, 0).angle_deg == pytest.approx(90.0)
    assert measure(Angle((10, 0), (0, 0), (10, 10)), image, 0).angle_deg == pytest.approx(45.0)
    assert measure(Angle((0, 0), (0, 0), (1, 1)), image, 0).angle_deg is None


def test_angle_uses_physical_space(gray_dataset) -> None:
    # 1 px across is 2 mm, 1 px down is 1 mm: the pixel diagonal (1,1) is atan(1/2) from the x axis
    image = _ct(gray_dataset, PixelSpacing=[1.0, 2.0])
    r = measure(Angle((1, 0), (0, 0), (1, 1)), image, 0)
    assert r.angle_deg == pytest.approx(math.degrees(math.atan(0.5)))


def test_rect_roi_stats_in_hu(gray_dataset) -> None:
    image = _ct(gray_dataset, PixelSpacing=[0.5, 0.5])
    # corners (1,1)-(3,3) contain pixel centers at columns 1,2 and rows 1,2: stored 11,12,21,22
    r = measure(RectROI((1, 1), (3, 3)), image, 0)
    hu = np.array([11, 12, 21, 22]) - 1000.0
    assert r.n_pixels == 4 and r.value_unit == "HU"
    assert r.mean == pytest.approx(hu.mean()) and r.sd == pytest.approx(hu.std(ddof=1))
    assert (r.min, r.max) == (-989.0, -978.0)
    assert r.area == pytest.approx(2 * 2 * 0.25) and r.area_unit == "mm²"
    assert "HU" in r.text and "mm²" in r.text


def test_ellipse_roi(gray_dataset) -> None:
    pixels = np.zeros((10, 10), np.int16)
    pixels[0, 0] = 500  # a corner pixel: outside the inscribed ellipse
    image = _ct(gray_dataset, pixels)
    r = measure(EllipseROI((0, 0), (10, 10)), image, 0)
    assert r.max == -1000.0 and r.n_pixels < 100
    assert r.area == pytest.approx(math.pi * 25) and r.area_unit == "px²"
    assert "spacing unknown" in r.text


def test_roi_outside_image(gray_dataset) -> None:
    r = measure(RectROI((50, 50), (60, 60)), _ct(gray_dataset), 0)
    assert r.mean is None and "no pixel" in r.text


def test_round_trip_through_json() -> None:
    shapes = [
        Distance((1, 2), (3, 4), frame=1, label="a"),
        Angle((0, 1), (2, 3), (4, 5)),
        RectROI((0, 0), (5, 5)),
        EllipseROI((1.5, 2.5), (7, 8)),
    ]
    for shape in shapes:
        data = json.loads(json.dumps(shape.to_dict()))
        assert measurement_from_dict(data) == shape
        assert type(shape).from_dict(data) == shape


def test_bad_records_raise_value_error() -> None:
    with pytest.raises(ValueError, match="unknown measurement kind"):
        measurement_from_dict({"kind": "spline"})
    with pytest.raises(ValueError, match="missing"):
        measurement_from_dict({"kind": "distance", "p0": [0, 0]})
    with pytest.raises(ValueError, match="pair"):
        measurement_from_dict({"kind": "distance", "p0": [0, 0], "p1": "x"})


def test_magnification_factor_corrects_imager_spacing(gray_dataset) -> None:
    pixels = np.zeros((10, 10), np.uint16)
    ds = gray_dataset(pixels, modality="DX", ImagerPixelSpacing=[0.2, 0.2], EstimatedRadiographicMagnificationFactor=1.25)
    image = DicomImage.from_dataset(ds)
    assert image.spacing_source == "calibrated" and image.pixel_spacing == pytest.approx((0.16, 0.16))
    r = measure(Distance((0, 0), (100, 0)), image, 0)
    assert r.length == pytest.approx(16.0) and r.text == "16.0 mm" and "magnification" in r.note
