"""Explanation maps as DICOM SEG and Parametric Map: dciodvfy clean, read back by highdicom, referencing the
source image; radiographs (no Frame of Reference) get a SEG, CT slices both."""

from __future__ import annotations

import subprocess

import highdicom as hd
import numpy as np
import pydicom
import pytest

from explain.dicom_maps import MapSource, build_parametric_map, build_segmentation
from tests.support.dicom_tools import dciodvfy_errors
from viewer.demo import demo_studies

MADE_BY = MapSource("attention: The heart is enlarged.", "RadStation explain", "5e" * 8)


def _source(modality: str) -> pydicom.Dataset:
    for study in demo_studies():
        for series in study.series:
            if series.modality == modality:
                return pydicom.dcmread(series.paths[len(series.paths) // 2])
    pytest.skip(f"no {modality} in the demo")


def _blob(ds) -> np.ndarray:
    yy, xx = np.mgrid[: ds.Rows, : ds.Columns]
    return np.exp(-((yy - ds.Rows / 2) ** 2 + (xx - ds.Columns / 3) ** 2) / (2 * (ds.Rows / 8) ** 2)).astype(np.float32)


@pytest.mark.parametrize("modality", ["DX", "CT"])
def test_segmentation_is_valid_and_reads_back_thresholded(modality, tmp_path):
    ds = _source(modality)
    values = _blob(ds)
    path = tmp_path / "seg.dcm"
    build_segmentation(ds, values, MADE_BY, threshold=0.5).save_as(path, enforce_file_format=True)
    assert not dciodvfy_errors(path)
    seg = hd.seg.segread(path)
    mask = seg.get_pixels_by_source_instance([ds.SOPInstanceUID], segment_numbers=[1])[0, :, :, 0]
    assert np.array_equal(mask.astype(bool), values >= 0.5)
    desc = seg.get_segment_description(1)
    assert desc.segment_label == MADE_BY.label[:64] and desc.segmented_property_type.value == "130404"
    assert seg.SeriesDescription.startswith("AI EXPLANATION") and seg.StudyInstanceUID == ds.StudyInstanceUID
    dump = subprocess.run(["dcmdump", str(path)], capture_output=True, text=True).stdout
    assert "Saliency" in dump and ds.SOPInstanceUID in dump


def test_parametric_map_for_ct(tmp_path):
    ct = _source("CT")
    values = _blob(ct)
    path = tmp_path / "pm.dcm"
    build_parametric_map(ct, values, MADE_BY).save_as(path, enforce_file_format=True)
    assert not dciodvfy_errors(path)
    pm = hd.pm.ParametricMap.from_dataset(pydicom.dcmread(path))
    assert np.allclose(pm.pixel_array.astype(np.float32).squeeze(), values, atol=1e-6)
    assert pm.FrameOfReferenceUID == ct.FrameOfReferenceUID


def test_parametric_map_for_a_radiograph_is_pixel_aligned_to_it(tmp_path):
    """A radiograph has no Frame of Reference: the map gets its own, shared with nothing, and is placed by
    its Derivation Image reference to the source (Spatial Locations Preserved)."""
    dx = _source("DX")
    assert "FrameOfReferenceUID" not in dx
    values = _blob(dx)
    path = tmp_path / "pm.dcm"
    build_parametric_map(dx, values, MADE_BY).save_as(path, enforce_file_format=True)
    assert not dciodvfy_errors(path)
    back = pydicom.dcmread(path)
    pm = hd.pm.ParametricMap.from_dataset(back)
    assert np.allclose(pm.pixel_array.astype(np.float32).squeeze(), values, atol=1e-6)
    assert back.FrameOfReferenceUID and back.FrameOfReferenceUID != build_parametric_map(
        dx, values, MADE_BY).FrameOfReferenceUID  # a new one per map: it claims no shared space
    per_frame = back.PerFrameFunctionalGroupsSequence[0]
    source_ref = per_frame.DerivationImageSequence[0].SourceImageSequence[0]
    assert source_ref.ReferencedSOPInstanceUID == dx.SOPInstanceUID and source_ref.SpatialLocationsPreserved == "YES"
    shared = back.SharedFunctionalGroupsSequence[0]
    expected = [float(v) for v in (dx.get("PixelSpacing") or dx.ImagerPixelSpacing)]
    assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == expected
    if list(dx.get("PatientOrientation") or []) == ["L", "F"]:  # rows run to the patient's left, columns to the feet
        assert [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient] == [1, 0, 0, 0, 0, -1]
    assert back.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == dx.SOPInstanceUID
    # the workstation's own viewer shows the values as a grey ramp, not a threshold
    from viewer.imaging.render import render_frame
    from viewer.io.image import load_image

    shown = render_frame(load_image(path), 0, None)
    assert len(np.unique(shown)) > 100 and shown[int(dx.Rows) // 2, int(dx.Columns) // 3] > 240


@pytest.mark.orthanc
def test_radiograph_parametric_map_round_trips_through_orthanc(orthanc, tmp_path):
    import io

    dx = _source("DX")
    path = tmp_path / "pm.dcm"
    build_parametric_map(dx, _blob(dx), MADE_BY).save_as(path, enforce_file_format=True)
    orthanc.clear()
    try:
        orthanc.upload(path)
        hits = orthanc.rest("POST", "/tools/lookup", pydicom.dcmread(path).SOPInstanceUID)
        back = pydicom.dcmread(io.BytesIO(orthanc.rest("GET", f"/instances/{hits[0]['ID']}/file")))
    finally:
        orthanc.clear()
    pm = hd.pm.ParametricMap.from_dataset(back)
    assert np.allclose(pm.pixel_array.astype(np.float32).squeeze(), _blob(dx), atol=1e-6)


def test_bad_maps_are_refused(tmp_path):
    ds = _source("DX")
    with pytest.raises(ValueError, match="shape"):
        build_segmentation(ds, np.zeros((3, 3), np.float32), MADE_BY)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        build_segmentation(ds, _blob(ds) * 2, MADE_BY)
    with pytest.raises(ValueError, match="threshold"):
        build_segmentation(ds, _blob(ds), MADE_BY, threshold=1.0)
