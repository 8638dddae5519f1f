"""TID 1500 measurement report: dciodvfy clean, read by DCMTK's dsrdump and by highdicom, numbers equal to
what the viewer shows."""

from __future__ import annotations

import highdicom as hd
import pydicom
import pytest

from app.dicom_objects.annotations import AnnotatedImage
from app.dicom_objects.measurement_report import (
    MeasurementReportError,
    build_measurement_report,
    parse_measurement_report,
    read_sr,
)
from tests.support.dicom_tools import dciodvfy_errors, dsrdump, save
from viewer.io.image import DicomImage
from viewer.measure import measure
from viewer.measure.shapes import Angle, Arrow, Distance, EllipseROI, Note, RectROI


def _report(ds, shapes):
    return build_measurement_report([AnnotatedImage(ds, shapes)], series_uid=hd.UID(), sop_uid=hd.UID(),
                                    observer="Dr Jane Doe")


def test_ct_measurements_round_trip_with_ucum_units(ct, tmp_path):
    shapes = [Distance(p0=(10, 10), p1=(40, 50), label="nodule"), Angle(p0=(20, 20), vertex=(30, 40), p1=(60, 30)),
              RectROI(p0=(40, 40), p1=(80, 70)), EllipseROI(p0=(30, 30), p1=(90, 80))]
    path = save(_report(ct, shapes), tmp_path / "tid1500.dcm")
    assert not dciodvfy_errors(path)
    dump = dsrdump(path)
    assert "Imaging Measurement Report" in dump and "(mm,UCUM" in dump and "(deg,UCUM" in dump
    assert "([hnsf'U],UCUM" in dump and "(mm2,UCUM" in dump and "SCOORD" in dump and "ELLIPSE" in dump
    rows = parse_measurement_report(pydicom.dcmread(path))
    image = DicomImage.from_dataset(ct)
    results = [measure(m, image) for m in shapes]
    by = {(r["tracking_id"], r["name"], r["derivation"]): r for r in rows}
    assert by[("nodule", "Length", "")]["value"] == pytest.approx(results[0].length, abs=1e-3)
    assert by[("nodule", "Length", "")]["unit"] == "mm"
    assert by[("Angle 2", "Angle", "")]["value"] == pytest.approx(results[1].angle_deg, abs=1e-3)
    roi = by[("Rectangle ROI 3", "Attenuation Coefficient", "Mean")]
    assert roi["unit"] == "[hnsf'U]" and roi["value"] == pytest.approx(results[2].mean, abs=1e-3)
    assert by[("Ellipse ROI 4", "Area", "")]["value"] == pytest.approx(results[3].area, abs=1e-3)
    assert by[("Ellipse ROI 4", "Attenuation Coefficient", "Standard Deviation")]["value"] == pytest.approx(
        results[3].sd, abs=1e-3)
    sr = read_sr(pydicom.dcmread(path))  # highdicom reads it as a TID 1500 document
    roi_groups = sr.content.get_planar_roi_measurement_groups()
    assert [g.roi.GraphicType for g in roi_groups] == ["POLYLINE", "ELLIPSE"]
    image_item = roi_groups[0].roi.ContentSequence[0]
    assert image_item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ct.SOPInstanceUID


def test_uncalibrated_lengths_are_in_pixels_not_mm(dx, tmp_path):
    for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
        if keyword in dx:
            delattr(dx, keyword)
    path = save(_report(dx, [Distance(p0=(0, 0), p1=(30, 40))]), tmp_path / "px.dcm")
    assert not dciodvfy_errors(path)
    row, = parse_measurement_report(pydicom.dcmread(path))
    assert (row["value"], row["unit"]) == (50.0, "{pixels}")


def test_nothing_to_report_is_a_clear_error(dx):
    with pytest.raises(MeasurementReportError, match="no measurements"):
        _report(dx, [])


def test_arrows_and_notes_stay_out_of_the_tid1500(dx, tmp_path):
    """They measure nothing (the GSPS carries them): only the distance is reported, and numbering skips them."""
    shapes = [Arrow(tip=(10, 10), tail=(40, 40), label="look"), Note(anchor=(5, 5), label="text"),
              Distance(p0=(0, 0), p1=(30, 40))]
    path = save(_report(dx, shapes), tmp_path / "mixed.dcm")
    assert not dciodvfy_errors(path)
    rows = parse_measurement_report(pydicom.dcmread(path))
    assert [(r["tracking_id"], r["name"]) for r in rows] == [("Distance 1", "Length")]
    with pytest.raises(MeasurementReportError, match="arrows and notes go in the GSPS"):
        _report(dx, shapes[:2])
